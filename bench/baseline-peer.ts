/**
 * The receiving side of the replication baselines (a child process of the bench): `tcp BYTES`
 * listens on 127.0.0.1 with node:net, `libp2p BYTES` runs a bare libp2p node (our config:
 * TCP + noise + yamux) with a sink protocol. It prints its address, reads BYTES, answers one
 * byte and exits.
 */
import '../core/polyfill.js'
import { createServer } from 'node:net'

const [kind, bytesArg] = process.argv.slice(2)
const bytes = Number(bytesArg)

if (kind === 'tcp') {
  const server = createServer(sock => {
    let got = 0
    sock.on('data', (b: Buffer) => {
      got += b.byteLength
      if (got >= bytes) sock.end(Buffer.from([1]), () => { server.close(); process.exit(0) })
    })
  })
  server.listen(0, '127.0.0.1', () => {
    const a = server.address() as { port: number }
    process.stdout.write(`127.0.0.1:${a.port}\n`)
  })
} else if (kind === 'libp2p') {
  const { createReplicantLibp2p } = await import('../node/libp2p.js')
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const node = await createReplicantLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  await node.handle('/replicant-bench/sink/1.0.0', async (stream) => {
    let got = 0
    for await (const chunk of stream) {
      got += chunk.byteLength
      if (got >= bytes) break
    }
    stream.send(new Uint8Array([1]))
    await stream.close().catch(() => {})
    setTimeout(() => { void Promise.resolve(node.stop()).then(() => process.exit(0)) }, 50)
  })
  process.stdout.write(`${node.getMultiaddrs()[0].toString()}\n`)
} else {
  process.stderr.write('usage: baseline-peer tcp|libp2p BYTES\n')
  process.exit(2)
}
