import '../core/polyfill.js'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { randomBytes, createHash } from 'node:crypto'
import * as lp from 'it-length-prefixed'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from '@libp2p/interface'
import { createReplicantLibp2p } from '../node/libp2p.js'
import { wantChunks, encodeChunksFrame, decodeChunksFrame } from '../protocols/chunk-protocol.js'
import { Framed } from '../protocols/framing.js'
import { CHUNK_PROTOCOL, CHUNK_PROTOCOL_V1_0, WIRE_VERSION, MAX_SMALL_FRAME_BYTES } from '../protocols/constants.js'
import { encode } from '../core/codec.js'
import { sha256 } from '../core/hash.js'
import { Uint8ArrayList } from 'uint8arraylist'
import { chunkHashes } from '../core/records.js'
import { cluster, converged, bytes, read } from './replication-helpers.js'

const sha = (b: Uint8Array): Uint8Array => createHash('sha256').update(b).digest()

async function rawPeer (t: ExecutionContext): Promise<Libp2p> {
  const node = await createReplicantLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  t.teardown(async () => { await node.stop() })
  return node
}

const concat = (parts: Uint8Array[]): Uint8Array => Buffer.concat(parts)

test('binary chunks frames round-trip; bytes come back as views of the frame', t => {
  const a = randomBytes(1000)
  const b = randomBytes(65536)
  const frame = concat(encodeChunksFrame([{ h: sha(a), d: a }, { h: sha(randomBytes(4)) }, { h: sha(b), d: b }]))
  const items = decodeChunksFrame(frame)
  t.is(items.length, 3)
  t.deepEqual(Buffer.from(items[0].d as Uint8Array), a)
  t.is(items[1].d, undefined)
  t.deepEqual(Buffer.from(items[2].d as Uint8Array), b)
  t.is((items[2].d as Uint8Array).buffer, frame.buffer)
})

test('a chunks frame in pieces (as the transport delivers it) decodes to views of the pieces, without a join', t => {
  const a = randomBytes(1000)
  const b = randomBytes(65536)
  const frame = concat(encodeChunksFrame([{ h: sha(a), d: a }, { h: sha(randomBytes(4)) }, { h: sha(b), d: b }]))
  // Pieces of a decrypted noise message's size, cut anywhere (here inside the header and inside b).
  const list = new Uint8ArrayList()
  for (let off = 0; off < frame.byteLength; off += 65519) list.append(Uint8Array.prototype.slice.call(frame, off, off + 65519))
  const pieces = [...list]
  const items = decodeChunksFrame(list)
  t.is(items.length, 3)
  t.deepEqual(Buffer.concat(items[0].d as Uint8Array[]), a)
  t.is(items[1].d, undefined)
  const bParts = items[2].d as Uint8Array[]
  t.is(bParts.length, 2, 'b lies across two pieces')
  t.deepEqual(Buffer.concat(bParts), b)
  t.deepEqual(Buffer.from(sha256(bParts)), Buffer.from(sha(b)), 'hashed from its pieces')
  t.true(bParts.every(p => pieces.some(q => q.buffer === p.buffer)), 'views of the pieces, not a copy')
})

test('malformed binary chunks frames are rejected', t => {
  const a = randomBytes(100)
  const good = concat(encodeChunksFrame([{ h: sha(a), d: a }]))
  const code = (f: Uint8Array): string | undefined => {
    try { decodeChunksFrame(f); return undefined } catch (err) { return (err as { code?: string }).code }
  }
  t.is(code(good.subarray(0, 3)), 'BAD_MESSAGE', 'too short')
  t.is(code(good.subarray(0, good.byteLength - 1)), 'BAD_MESSAGE', 'a chunk runs past the frame')
  t.is(code(concat([good, new Uint8Array([1])])), 'BAD_MESSAGE', 'trailing bytes')
  const huge = Uint8Array.from(good)
  new DataView(huge.buffer).setUint32(1, 0xffffff)
  t.is(code(huge), 'BAD_MESSAGE', 'header longer than the frame')
  const header = encode({ v: WIRE_VERSION + 1, t: 'chunks', items: [] })
  const newer = new Uint8Array(5 + header.byteLength)
  new DataView(newer.buffer).setUint32(1, header.byteLength)
  newer.set(header, 5)
  t.is(code(newer), 'UNSUPPORTED_VERSION')
  const neg = encode({ v: WIRE_VERSION, t: 'chunks', items: [{ h: sha(a), n: -1 }] })
  const negFrame = new Uint8Array(5 + neg.byteLength)
  new DataView(negFrame.buffer).setUint32(1, neg.byteLength)
  negFrame.set(neg, 5)
  t.is(code(negFrame), 'BAD_MESSAGE', 'negative length')
})

test('a peer sending a garbage binary frame gets a protocol error; the node keeps serving, and chunk/1.0.0 still works', async t => {
  const [a, b] = await cluster(t, 2)
  const vol = await a.createVolume({ name: 'g', replicas: [b.peerId] })
  const data = randomBytes(3 * 65536 + 7)
  const rec = await a.volumes.putFile('g', '/f', bytes(data))
  const hashes = [...chunkHashes(rec)]
  // An evil server answers the want with a frame whose declared chunk length runs past its end.
  const evil = await rawPeer(t)
  await evil.handle(CHUNK_PROTOCOL, async (stream) => {
    const framed = new Framed(stream, MAX_SMALL_FRAME_BYTES)
    await framed.read()
    const header = encode({ v: WIRE_VERSION, t: 'chunks', items: [{ h: hashes[0], n: 1 << 20 }] })
    const head = new Uint8Array(5 + header.byteLength)
    new DataView(head.buffer).setUint32(1, header.byteLength)
    head.set(header, 5)
    await framed.writeFrame([head, randomBytes(10)])
    await framed.close()
  })
  await b.libp2p.dial(multiaddr(evil.getMultiaddrs()[0].toString()))
  let code: string | undefined
  try {
    const items = wantChunks(b.libp2p, evil.peerId, { volume: 'g', volumeId: vol.id, hashes }, 65536)
    while ((await items.next()).done !== true) { /* none expected: the bad frame fails it */ }
  } catch (err) { code = (err as { code?: string }).code }
  t.is(code, 'BAD_MESSAGE')
  // Raw garbage sent to the real node's chunk handler: it answers with an error and keeps serving.
  const raw = await rawPeer(t)
  await raw.dial(multiaddr(a.multiaddrs()[0]))
  const s = await raw.dialProtocol(peerIdFromString(a.peerId), CHUNK_PROTOCOL)
  s.send(lp.encode.single(randomBytes(200)))
  const f = new Framed(s, 1024 * 1024)
  await t.throwsAsync(f.read())
  // The CBOR-wrapped protocol (1.0.0) is still served to peers that only speak it.
  const s1 = await raw.dialProtocol(peerIdFromString(a.peerId), CHUNK_PROTOCOL_V1_0)
  const f1 = new Framed(s1, 5 * 1024 * 1024)
  await f1.write({ v: WIRE_VERSION, t: 'want', volume: 'g', volumeId: vol.id, hashes })
  const reply = await f1.read().catch((err: { code?: string }) => ({ t: 'error', code: err.code }))
  t.is((reply as { code?: string }).code, 'NOT_A_MEMBER', 'the raw peer is no member, answered in CBOR on 1.0.0')
  // Real members still sync, over 1.1.0.
  await a.volumes.putFile('g', '/after', bytes(Buffer.from('still serving')))
  await converged([a, b], 'g', tr => tr.length === 2)
  t.is((await read(b, 'g', '/after')).toString(), 'still serving')
  t.deepEqual(await read(b, 'g', '/f'), data)
})
