import '../core/polyfill.js'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import * as lp from 'it-length-prefixed'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from '@libp2p/interface'
import { createReplicantLibp2p } from '../node/libp2p.js'
import { fetchIndexPage } from '../protocols/index-protocol.js'
import { wantChunks } from '../protocols/chunk-protocol.js'
import { requestMemberState } from '../protocols/control-protocol.js'
import { Framed } from '../protocols/framing.js'
import { INDEX_PROTOCOL, INDEX_PROTOCOL_V1_0, CHUNK_PROTOCOL, NOTIFY_PROTOCOL, CONTROL_PROTOCOL, WIRE_VERSION, MAX_SMALL_FRAME_BYTES, MAX_FRAME_BYTES } from '../protocols/constants.js'
import { encode } from '../core/codec.js'
import { chunkHashes } from '../core/records.js'
import { sha256Hex } from './helpers.js'
import { cluster, converged, bytes, read } from './replication-helpers.js'

/** A bare libp2p peer (TCP + noise + yamux) that speaks the protocols by hand. */
async function rawPeer (t: ExecutionContext): Promise<Libp2p> {
  const node = await createReplicantLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  t.teardown(async () => { await node.stop() })
  return node
}

async function errorCode (p: Promise<unknown>): Promise<string | undefined> {
  try { await p } catch (err) { return (err as { code?: string }).code }
  return undefined
}

test('a peer that is not a member is refused index and chunks, and learns nothing', async t => {
  const [a, b] = await cluster(t, 2)
  const vol = await a.createVolume({ name: 'private', replicas: [b.peerId] })
  const rec = await a.volumes.putFile('private', '/secret', bytes(Buffer.from('secret bytes')))
  const outsider = await rawPeer(t)
  const peer = peerIdFromString(a.peerId)
  await outsider.dial(multiaddr(a.multiaddrs()[0]))
  t.is(await errorCode(fetchIndexPage(outsider, peer, { volume: 'private', volumeId: vol.id, since: 0 })), 'NOT_A_MEMBER')
  const got: unknown[] = []
  const code = await errorCode((async () => {
    for await (const item of wantChunks(outsider, peer, { volume: 'private', volumeId: vol.id, hashes: [...chunkHashes(rec)] }, 65536)) got.push(item)
  })())
  t.is(code, 'NOT_A_MEMBER')
  t.deepEqual(got, [])
  t.is(await errorCode(requestMemberState(outsider, peer, 'private', vol.id)), 'NOT_A_MEMBER')
  // Unknown volume and wrong volume id are refused with their own codes.
  t.is(await errorCode(fetchIndexPage(outsider, peer, { volume: 'nope', volumeId: vol.id, since: 0 })), 'VOLUME_NOT_FOUND')
  t.is(await errorCode(fetchIndexPage(b.libp2p, peer, { volume: 'private', volumeId: '0'.repeat(32), since: 0 })), 'VOLUME_ID_MISMATCH')
})

test('a member is served only chunks its volume references', async t => {
  const [a, b] = await cluster(t, 2)
  const shared = await a.createVolume({ name: 'shared', replicas: [b.peerId] })
  await a.createVolume({ name: 'mine' })
  const mine = await a.volumes.putFile('mine', '/only-a', bytes(randomBytes(1000)))
  const items = []
  for await (const item of wantChunks(b.libp2p, peerIdFromString(a.peerId), { volume: 'shared', volumeId: shared.id, hashes: [...chunkHashes(mine)] }, 65536)) items.push(item)
  t.is(items.length, 1)
  t.is(items[0].bytes, undefined, 'a chunk of another volume is answered as missing')
})

for (const protocol of [INDEX_PROTOCOL, CHUNK_PROTOCOL, NOTIFY_PROTOCOL, CONTROL_PROTOCOL]) {
  test(`${protocol}: garbage, oversized, truncated and silent streams leave the node serving`, async t => {
    const [a, b] = await cluster(t, 2)
    await a.createVolume({ name: 'f', replicas: [b.peerId] })
    await a.volumes.putFile('f', '/x', bytes(Buffer.from('still here')))
    await converged([a, b], 'f', tr => tr.length === 1)
    const evil = await rawPeer(t)
    const target = peerIdFromString(a.peerId)
    await evil.dial(multiaddr(a.multiaddrs()[0]))

    // Garbage: bytes that are no length-prefixed CBOR.
    const s1 = await evil.dialProtocol(target, protocol)
    s1.send(randomBytes(300))
    await s1.close().catch(() => {})
    // Oversized: a length prefix far over the cap, then some bytes.
    const s2 = await evil.dialProtocol(target, protocol)
    s2.send(lp.encode.single(new Uint8Array(MAX_SMALL_FRAME_BYTES + 10)))
    await s2.close().catch(() => {})
    // Truncated: a prefix announcing 1,000 bytes, then 10, then end of stream.
    const s3 = await evil.dialProtocol(target, protocol)
    const frame = lp.encode.single(encode({ v: WIRE_VERSION, t: 'index-req', pad: randomBytes(1000) })).subarray()
    s3.send(frame.subarray(0, 10))
    await s3.close().catch(() => {})
    // Valid CBOR of the wrong shape.
    const s4 = await evil.dialProtocol(target, protocol)
    const f4 = new Framed(s4, 1024 * 1024)
    await f4.write({ v: WIRE_VERSION, t: 'index-req', volume: 42, since: 'yesterday' })
    await f4.readOrEnd({ timeoutMs: 5000 }).catch(() => undefined)
    // Silent: a stream that never says anything stays open while others are served.
    const silent = await evil.dialProtocol(target, protocol)
    t.teardown(() => { silent.abort(new Error('test over')) })

    // The node still serves a real member and still replicates.
    const vol = await a.store.requireVolume('f')
    const page = await fetchIndexPage(b.libp2p, target, { volume: 'f', volumeId: vol.id, since: 0 })
    t.is(page.records.length, 1)
    await a.volumes.putFile('f', '/y', bytes(Buffer.from('written after the abuse')))
    await converged([a, b], 'f', tr => tr.length === 2)
    t.is((await read(b, 'f', '/y')).toString(), 'written after the abuse')
    t.true(a.store.isOpen)
  })
}

test('a chunk with the wrong hash is rejected and fetched from another member; a repeat offender is dropped', async t => {
  const [a, c] = await cluster(t, 2)
  const evil = await rawPeer(t)
  const evilId = evil.peerId.toString()
  let served = 0
  // The evil member answers every want-list with bytes that do not match the hashes.
  await evil.handle(CHUNK_PROTOCOL, async (stream) => {
    const framed = new Framed(stream, MAX_SMALL_FRAME_BYTES)
    const want = await framed.read() as unknown as { hashes: Uint8Array[] }
    served++
    await framed.write({ v: WIRE_VERSION, t: 'chunks', items: want.hashes.map(h => ({ h, d: randomBytes(100) })) })
    await framed.write({ v: WIRE_VERSION, t: 'end' })
    await framed.close()
  })
  await evil.dial(multiaddr(c.multiaddrs()[0]))
  const vol = await a.createVolume({ name: 'w', replicas: [c.peerId, evilId] })
  // Data c does not hold yet: written while c is cut off from a.
  await c.peers.block([a.peerId])
  await a.peers.block([c.peerId])
  const data = randomBytes(3 * 65536 + 5)
  const rec = await a.volumes.putFile('w', '/data', bytes(data))
  a.peers.unblock()
  c.peers.unblock()
  const hashes = [...chunkHashes(rec)]
  // Evil first, then a: what the sync engine does when it pulls from a peer that lies.
  await c.sync.fetcher.fetch(vol, hashes, [evilId, a.peerId])
  t.deepEqual(await c.store.chunks.hasMany(hashes), hashes.map(() => true))
  for (const h of hashes) {
    const bytesHeld = await c.store.chunks.get(h)
    t.is(sha256Hex(bytesHeld!), Buffer.from(h).toString('hex'), 'only verified bytes are stored')
  }
  t.true(c.sync.fetcher.counters.badChunks >= 1)
  t.true(served >= 1)
  // Two more lies and the peer is shunned: not asked again, and hung up on.
  for (let i = 0; i < 2; i++) {
    await c.sync.fetcher.fetch(vol, [Buffer.alloc(32, i + 1)], [evilId]).catch(() => {})
  }
  t.true(c.sync.fetcher.isShunned(evilId))
  const before = served
  await t.throwsAsync(c.sync.fetcher.fetch(vol, [Buffer.alloc(32, 9)], [evilId]), { message: /not available/ })
  t.is(served, before, 'a shunned peer is not asked')
  await converged([a, c], 'w', tr => tr.length === 1)
  t.deepEqual(await read(c, 'w', '/data'), data)
})

test('a lying split chunk list in an index page is refused with a typed error; a 1.0.0 client still gets long records whole', async t => {
  const liar = await rawPeer(t)
  const client = await rawPeer(t)
  // The liar answers every index request with the page the test sets, then what follows it.
  let answer: { page: Record<string, unknown>, after: Uint8Array[] } = { page: {}, after: [] }
  await liar.handle(INDEX_PROTOCOL, async (stream) => {
    const framed = new Framed(stream, MAX_SMALL_FRAME_BYTES)
    await framed.read()
    await framed.write({ v: WIRE_VERSION, t: 'index-page', head: 1, last: 1, more: false, ...answer.page })
    for (const part of answer.after) await framed.writeFrame([part])
    await framed.close()
  })
  await client.dial(liar.getMultiaddrs()[0])
  const rec = { v: 1, path: '/f', size: 4096 * 9000, mode: 0o644, mtime: 1, chunkSize: 4096, chunks: new Uint8Array(0), vv: {}, deleted: false, seq: 1 }
  const ask = async (): Promise<string | undefined> => await errorCode(fetchIndexPage(client, liar.peerId, { volume: 'v', volumeId: '0'.repeat(32), since: 0 }))
  answer = { page: { records: [rec], split: [{ i: 0, bytes: 2 ** 40 }] }, after: [] }
  t.is(await ask(), 'MESSAGE_TOO_LARGE', 'a list over the limit is refused before anything is allocated')
  answer = { page: { records: [rec], split: [{ i: 3, bytes: 9000 * 32 }] }, after: [] }
  t.is(await ask(), 'BAD_MESSAGE', 'a split entry naming no record')
  answer = { page: { records: [rec], split: [{ i: 0, bytes: 9000 * 32 }] }, after: [randomBytes(1000)] }
  t.is(await ask(), 'TRUNCATED', 'the stream ends inside the list')
  answer = { page: { records: [rec], split: [{ i: 0, bytes: 9000 * 32 }] }, after: [randomBytes(9000 * 32 + 32)] }
  t.is(await ask(), 'BAD_MESSAGE', 'a part longer than announced')
  answer = { page: { records: [rec], split: [{ i: 0, bytes: 8000 * 32 }] }, after: [randomBytes(8000 * 32)] }
  t.is(await ask(), 'BAD_MESSAGE', 'a list whose count does not match the size fails validation')
  answer = { page: { records: [rec], split: [{ i: 0, bytes: 9000 * 32 }] }, after: [randomBytes(5000 * 32), randomBytes(4000 * 32)] }
  const ok = await fetchIndexPage(client, liar.peerId, { volume: 'v', volumeId: '0'.repeat(32), since: 0 })
  t.is(ok.records[0].chunks.byteLength, 9000 * 32, 'an honest split list in two parts is put back together')
  // Many lists, each under the per-list limit, over the limit in all: refused before allocating.
  const many = Array.from({ length: 6 }, (_, i) => ({ ...rec, path: `/f${i}`, seq: i + 1 }))
  answer = { page: { records: many, split: many.map((_, i) => ({ i, bytes: 2 ** 26 })) }, after: [] }
  t.is(await ask(), 'MESSAGE_TOO_LARGE', 'the sum of announced lists is capped too')

  // A node holding a long record (over the split threshold) gives an index/1.0.0 client the whole record, as before 1.1.0.
  const [a] = await cluster(t, 1)
  const vol = await a.createVolume({ name: 'long', chunkSize: 4096, replicas: [client.peerId.toString()] })
  await a.volumes.putFile('long', '/f', bytes(randomBytes(4096 * 9000)))
  await client.dial(multiaddr(a.multiaddrs()[0]))
  const stream = await client.dialProtocol(peerIdFromString(a.peerId), INDEX_PROTOCOL_V1_0)
  const framed = new Framed(stream, MAX_FRAME_BYTES)
  await framed.write({ v: WIRE_VERSION, t: 'index-req', volume: 'long', volumeId: vol.id, since: 0 })
  const page = await framed.read() as unknown as { records: Array<{ chunks: Uint8Array }>, split?: unknown }
  t.is(page.split, undefined)
  t.is(page.records[0].chunks.byteLength, 9000 * 32)
})
