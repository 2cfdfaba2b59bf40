/**
 * Private swarms (`start --swarm-key`, @libp2p/pnet): nodes with the same key connect and
 * replicate; a node without the key, or with another, cannot connect in either direction.
 * Real nodes on loopback (TCP + pnet + noise + yamux); the CLI as a child process.
 */
import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { writeFile, chmod, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { startNode, tmpDir, runCli, spawnNodeProcess, waitFor, randomSource, sha256Stream, clientOf } from './helpers.js'
import { bytes, read } from './replication-helpers.js'
import { generateSwarmKey, parseSwarmKey, readSwarmKeyFile, formatSwarmKey, SWARM_KEY_HEADER } from '../core/swarm-key.js'
import { InvalidInputError } from '../core/errors.js'
import type { ReplicantNode } from '../node/replicant-node.js'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { loadTopologyConfig, parseTopologyConfig } from '../testing/topology-config.js'

type T = ExecutionContext<unknown>

async function keyFile (t: T, text = generateSwarmKey()): Promise<string> {
  const file = join(await tmpDir(t, 'replicant-key-'), 'swarm.key')
  await writeFile(file, text, { mode: 0o600 })
  return file
}

/** Dials `to` from `from` directly (no redial logic): resolves true when a connection opens. */
async function canDial (from: ReplicantNode, to: ReplicantNode): Promise<boolean> {
  try {
    await from.libp2p.dial(multiaddr(to.multiaddrs()[0]), { signal: AbortSignal.timeout(5_000) })
    return true
  } catch {
    return false
  }
}

function connected (a: ReplicantNode, b: ReplicantNode): boolean {
  return a.libp2p.getConnections(b.libp2p.peerId).length > 0
}

// ---- the key format ----

test('generated keys are in kubo\'s format, parse back, and differ', t => {
  const a = generateSwarmKey()
  const b = generateSwarmKey()
  t.regex(a, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
  t.not(a, b)
  const k = parseSwarmKey(a)
  t.is(k.key.byteLength, 32)
  t.is(formatSwarmKey(k.key), a)
  t.regex(k.fingerprint, /^[0-9a-f]{16}$/)
  t.not(k.fingerprint, parseSwarmKey(b).fingerprint)
  t.false(a.includes(k.fingerprint), 'the fingerprint is not a piece of the key')
})

test('kubo key files parse: CRLF, no trailing newline, upper-case hex, base64', t => {
  const hex = 'dffb7e3135399a8b1612b2aaca1c36a3a8ac2cd0cca51ceeb2ced87d308cac6d'
  const want = parseSwarmKey(`${SWARM_KEY_HEADER}\n/base16/\n${hex}\n`).fingerprint
  t.is(parseSwarmKey(`${SWARM_KEY_HEADER}\r\n/base16/\r\n${hex}\r\n`).fingerprint, want)
  t.is(parseSwarmKey(`${SWARM_KEY_HEADER}\n/base16/\n${hex}`).fingerprint, want)
  t.is(parseSwarmKey(`${SWARM_KEY_HEADER}\n/base16/\n${hex.toUpperCase()}\n`).fingerprint, want)
  t.is(parseSwarmKey(`${SWARM_KEY_HEADER}\n/base64/\n${Buffer.from(hex, 'hex').toString('base64')}\n`).fingerprint, want)
})

const badKeys: Array<[string, string]> = [
  ['empty', ''],
  ['no header', '/base16/\n' + 'ab'.repeat(32) + '\n'],
  ['another header', '/key/swarm/psk/2.0.0/\n/base16/\n' + 'ab'.repeat(32) + '\n'],
  ['key missing', `${SWARM_KEY_HEADER}\n/base16/\n`],
  ['key too short', `${SWARM_KEY_HEADER}\n/base16/\n${'ab'.repeat(31)}\n`],
  ['key too long', `${SWARM_KEY_HEADER}\n/base16/\n${'ab'.repeat(33)}\n`],
  ['odd hex digit', `${SWARM_KEY_HEADER}\n/base16/\n${'ab'.repeat(31)}zz\n`],
  ['unknown codec', `${SWARM_KEY_HEADER}\n/base58/\n${'ab'.repeat(32)}\n`],
  ['binary codec', `${SWARM_KEY_HEADER}\n/bin/\n${'ab'.repeat(32)}\n`],
  ['extra line', `${SWARM_KEY_HEADER}\n/base16/\n${'ab'.repeat(32)}\nmore\n`],
  ['base64 of 31 bytes', `${SWARM_KEY_HEADER}\n/base64/\n${Buffer.alloc(31, 1).toString('base64')}\n`]
]

for (const [name, text] of badKeys) {
  test(`a bad key file is refused with BAD_SWARM_KEY: ${name}`, t => {
    const err = t.throws(() => parseSwarmKey(text, 'swarm.key'), { instanceOf: InvalidInputError })
    t.is(err?.code, 'BAD_SWARM_KEY')
    t.false(err?.message.includes('\n'), 'one line')
    t.false(err?.message.includes('abab'), 'the message never quotes the key')
  })
}

test('readSwarmKeyFile: a missing file is BAD_SWARM_KEY; group-readable is flagged', async t => {
  const missing = await t.throwsAsync(readSwarmKeyFile('/nonexistent/swarm.key'), { instanceOf: InvalidInputError })
  t.is(missing?.code, 'BAD_SWARM_KEY')
  const file = await keyFile(t)
  t.false((await readSwarmKeyFile(file)).exposed)
  await chmod(file, 0o644)
  t.true((await readSwarmKeyFile(file)).exposed)
})

// ---- real nodes ----

test('two nodes with the same key connect, replicate a file, and say they are in a private swarm', async t => {
  const file = await keyFile(t)
  const a = await startNode(t, { swarmKeyFile: file })
  const b = await startNode(t, { swarmKeyFile: file, join: [a.multiaddrs()[0]] })
  await waitFor(() => connected(a, b) && connected(b, a))
  await a.createVolume({ name: 'v', replicas: [b.peerId] })
  await a.volumes.putFile('v', '/secret.txt', bytes(Buffer.from('inside the swarm')))
  const got = await waitFor(async () => await read(b, 'v', '/secret.txt').catch(() => undefined), 100)
  t.is(got.toString(), 'inside the swarm')
  const key = parseSwarmKey(await readFile(file, 'utf8'))
  for (const n of [a, b]) {
    const s = await clientOf(n).status()
    t.true(s.privateSwarm)
    t.is(s.swarmKeyFingerprint, key.fingerprint)
    t.false(JSON.stringify(s).includes(Buffer.from(key.key).toString('hex')), 'status never shows the key')
  }
})

test('a node without a key and a keyed node cannot connect, in either direction', async t => {
  const keyed = await startNode(t, { swarmKeyFile: await keyFile(t) })
  const open = await startNode(t)
  t.false((await open.status()).privateSwarm)
  t.is((await open.status()).swarmKeyFingerprint, undefined)
  t.false(await canDial(open, keyed), 'unkeyed -> keyed')
  t.false(await canDial(keyed, open), 'keyed -> unkeyed')
  t.false(connected(open, keyed))
  t.false(connected(keyed, open))
  // Neither node is harmed: each still serves its own API and a proper peer.
  const peer = await startNode(t)
  t.true(await canDial(peer, open), 'the unkeyed node still takes unkeyed peers')
})

test('nodes with different keys cannot connect, in either direction', async t => {
  const a = await startNode(t, { swarmKeyFile: await keyFile(t) })
  const b = await startNode(t, { swarmKeyFile: await keyFile(t) })
  t.not((await a.status()).swarmKeyFingerprint, (await b.status()).swarmKeyFingerprint)
  t.false(await canDial(a, b), 'a -> b')
  t.false(await canDial(b, a), 'b -> a')
  t.false(connected(a, b))
  // A join to the other swarm never succeeds either (the peer manager's dial path).
  const c = await startNode(t, { swarmKeyFile: await keyFile(t), join: [a.multiaddrs()[0]] })
  await new Promise(resolve => setTimeout(resolve, 1000))
  t.false(connected(c, a))
  t.true((await a.status()).peers.every(p => p.peerId !== c.peerId || !p.connected))
})

test('three keyed nodes in one process replicate 48 MiB (pnet 3.0.27 crashed here: WebAssembly.Memory.grow)', async t => {
  const file = await keyFile(t)
  const a = await startNode(t, { api: false, swarmKeyFile: file })
  const b = await startNode(t, { api: false, swarmKeyFile: file, join: [a.multiaddrs()[0]] })
  const c = await startNode(t, { api: false, swarmKeyFile: file, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'v', replicas: [b.peerId, c.peerId] })
  const src = randomSource(48 * 1024 * 1024)
  await a.volumes.putFile('v', '/big.bin', src.source)
  for (const n of [b, c]) {
    const got = await waitFor(async () => {
      const rec = await n.volumes.stat('v', '/big.bin').catch(() => undefined)
      if (rec === undefined) return undefined
      return await sha256Stream(n.volumes.readFile('v', rec)).catch(() => undefined)
    }, 200)
    t.is(got.hex, src.digest())
  }
})

// ---- interoperability: the PSK v1 wire protocol of @libp2p/pnet (and so kubo) ----

/** A bare libp2p peer protected by @libp2p/pnet's own protector, stopped in teardown. */
async function pnetPeer (t: T, file: string): Promise<Libp2p<{ ping: ReturnType<ReturnType<typeof ping>> }>> {
  const peer = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { ping: ping() },
    connectionProtector: preSharedKey({ psk: parseSwarmKey(await readFile(file, 'utf8')).encoded })
  })
  t.teardown(async () => { await peer.stop() })
  return peer
}

test('a node and a peer running @libp2p/pnet with the same key connect both ways; with another key they do not', async t => {
  const file = await keyFile(t)
  const node = await startNode(t, { swarmKeyFile: file })
  const peer = await pnetPeer(t, file)
  t.true((await peer.services.ping.ping(multiaddr(node.multiaddrs()[0]), { signal: AbortSignal.timeout(10_000) })) >= 0, 'pnet -> node')
  await peer.hangUp(node.libp2p.peerId)
  await node.libp2p.dial(peer.getMultiaddrs()[0], { signal: AbortSignal.timeout(10_000) })
  t.true(connected(node, { libp2p: peer } as unknown as ReplicantNode), 'node -> pnet')
  // Bytes flow both ways through the two ciphers (identify and ping ran over them).
  const other = await pnetPeer(t, await keyFile(t))
  t.false(await other.dial(multiaddr(node.multiaddrs()[0]), { signal: AbortSignal.timeout(5_000) }).then(() => true, () => false), 'another key: no connection')
})

// ---- the CLI ----

test('CLI: swarm-key generate output parses back and its fingerprint is what status shows', async t => {
  const dir = await tmpDir(t)
  const gen = await runCli(['swarm-key', 'generate'], { dataDir: dir })
  t.is(gen.code, 0, gen.stderr)
  const key = parseSwarmKey(gen.stdout)
  const file = await keyFile(t, gen.stdout)
  const fp = await runCli(['swarm-key', 'fingerprint', file], { dataDir: dir })
  t.is(fp.code, 0, fp.stderr)
  t.is(fp.stdout.trim(), key.fingerprint)
  const node = await spawnNodeProcess(t, join(dir, 'data'), ['--swarm-key', file])
  t.true(node.stdout().includes(`private swarm: key fingerprint ${key.fingerprint}`))
  const status = await runCli(['status'], { dataDir: join(dir, 'data') })
  t.is(status.code, 0, status.stderr)
  t.regex(status.stdout, new RegExp(`swarm: +private \\(key fingerprint ${key.fingerprint}\\)`))
  const json = JSON.parse((await runCli(['status', '--json'], { dataDir: join(dir, 'data') })).stdout) as { privateSwarm: boolean, swarmKeyFingerprint: string }
  t.true(json.privateSwarm)
  t.is(json.swarmKeyFingerprint, key.fingerprint)
  await node.kill()
})

test('CLI: start with a bad key file fails at once with one typed line and a non-zero exit', async t => {
  const dir = await tmpDir(t)
  const bad = await keyFile(t, `${SWARM_KEY_HEADER}\n/base16/\n${'ab'.repeat(20)}\n`)
  for (const file of [bad, join(dir, 'absent.key')]) {
    const r = await runCli(['start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--swarm-key', file], { dataDir: join(dir, 'data') })
    t.not(r.code, 0)
    t.is(r.stderr.trim().split('\n').length, 1, r.stderr)
    t.regex(r.stderr, /^replicant: .*swarm key.* \[BAD_SWARM_KEY\]\n$/)
    t.false(r.stderr.includes('abab'))
  }
})

// ---- topologies ----

test('topology config: swarmKeyFile is found next to the config; a non-path is refused by name', async t => {
  const dir = await tmpDir(t)
  const file = join(dir, 'topo.json')
  await writeFile(file, JSON.stringify({ nodes: [{ name: 'a', swarmKeyFile: 'swarm.key' }, { name: 'b' }], volumes: [] }))
  const config = await loadTopologyConfig(file)
  t.is(config.nodes[0].swarmKeyFile, join(dir, 'swarm.key'))
  t.is(config.nodes[1].swarmKeyFile, undefined)
  const err = t.throws(() => parseTopologyConfig({ nodes: [{ name: 'a', swarmKeyFile: 42 }] }))
  t.regex(err?.message ?? '', /nodes\[0\]\.swarmKeyFile: must be a file path/)
})
