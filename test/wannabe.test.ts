import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { startNode, waitFor, randomSource, sha256Stream, httpRequest, asyncSource } from './helpers.js'
import { converged, bytes, read, watchdog } from './replication-helpers.js'
import { chunkHashes } from '../core/records.js'
import type { ReplicantNode } from '../node/replicant-node.js'

const MiB = 1024 * 1024
/** Read timeout for tests that are not about timeouts: a busy machine must not fail them. */
const SLOW_OK = 120_000

/** Streams a file of a node through sha256. */
async function digest (node: ReplicantNode, volume: string, path: string): Promise<string> {
  const rec = await node.volumes.stat(volume, path)
  return (await sha256Stream(node.volumes.readFile(volume, rec))).hex
}

async function stateOf (node: ReplicantNode, volume: string): Promise<string | undefined> {
  return (await node.store.getVolume(volume))?.state ?? (await node.store.getVolume(volume) !== undefined ? 'steady' : undefined)
}

async function hasFile (node: ReplicantNode, volume: string, path: string): Promise<true | undefined> {
  try { await node.volumes.stat(volume, path); return true } catch { return undefined }
}

test('a member added to a volume with 200 MiB in 1,000 files serves reads at once and converges to steady', async t => {
  t.timeout(300_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'photos' })
  const digests = new Map<string, string>()
  for (let i = 0; i < 4; i++) {
    const src = randomSource(40 * MiB)
    await a.volumes.putFile('photos', `/big/${i}.bin`, src.source)
    digests.set(`/big/${i}.bin`, src.digest())
  }
  for (let i = 0; i < 996; i++) {
    const data = randomBytes(40 * 1024 + i)
    await a.volumes.putFile('photos', `/small/${String(i).padStart(3, '0')}`, bytes(data))
  }
  const b = await startNode(t, { api: '127.0.0.1:0', join: [a.multiaddrs()[0]], readTimeoutMs: SLOW_OK })
  const added = await a.sync.addReplica('photos', b.peerId)
  t.is(added.volume.generation, 2, 'a membership change is a new generation')
  t.deepEqual(added.announce.map(x => x.status), ['created'])
  await waitFor(async () => await hasFile(b, 'photos', '/big/3.bin'))
  t.is(await stateOf(b, 'photos'), 'copy', 'serving as a wannabe')
  // The first read, through the HTTP API, while the member is still a wannabe.
  const res = await httpRequest(b.apiUrl!, { path: '/v1/volumes/photos/files/big/3.bin' })
  t.is(res.status, 200)
  t.is((await sha256Stream(asyncSource([res.body]))).hex, digests.get('/big/3.bin') ?? 'missing')
  t.true(b.sync.reader.counters.chunksReceived > 0, 'the read fetched chunks on demand')
  await waitFor(async () => await stateOf(b, 'photos') === 'steady' ? true : undefined, 200)
  for (const [path, hex] of digests) t.is(await digest(b, 'photos', path), hex)
  await converged([a, b], 'photos', tr => tr.length === 1000)
  const holds = await b.store.chunks.hasMany([...chunkHashes(await b.volumes.stat('photos', '/big/0.bin'))])
  t.true(holds.every(Boolean), 'steady means every chunk is held')
  // Every member shows every member's state and the new generation.
  const view = await waitFor(async () => {
    const info = await a.volumeInfo('photos') as any
    const mb = info.memberStates.find((m: any) => m.peerId === b.peerId)
    return mb.state === 'steady' ? info : undefined
  })
  t.is(view.generation, 2)
})

test('a Range read of the last MiB of a 128 MiB file fetches only the chunks that cover it', async t => {
  t.timeout(180_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'r' })
  const src = randomSource(128 * MiB)
  const rec = await a.volumes.putFile('r', '/movie.bin', src.source)
  const b = await startNode(t, { api: '127.0.0.1:0', join: [a.multiaddrs()[0]], copyConcurrency: 0, readTimeoutMs: SLOW_OK })
  await a.sync.addReplica('r', b.peerId)
  await waitFor(async () => await hasFile(b, 'r', '/movie.bin'))
  const start = 127 * MiB
  const res = await httpRequest(b.apiUrl!, { path: '/v1/volumes/r/files/movie.bin', headers: { range: `bytes=${start}-` } })
  t.is(res.status, 206)
  t.is(res.body.byteLength, MiB)
  // The same bytes as on the member that wrote it.
  const expected = a.volumes.readFile('r', rec, { start, end: rec.size - 1 })
  const parts: Uint8Array[] = []
  for await (const p of expected) parts.push(p)
  t.deepEqual(res.body, Buffer.concat(parts))
  const covering = MiB / rec.chunkSize
  t.is(b.sync.reader.counters.chunksReceived, covering)
  t.is(b.sync.reader.counters.bytesReceived, MiB)
  const held = await b.store.chunks.hasMany([...chunkHashes(rec)])
  t.is(held.filter(Boolean).length, covering)
  t.true(held.slice(-covering).every(Boolean), 'exactly the last MiB is held')
  t.is(await stateOf(b, 'r'), 'copy')
})

test('two concurrent reads of one file fetch each chunk once', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'c' })
  const data = randomBytes(40 * 65536 + 123)
  const rec = await a.volumes.putFile('c', '/f', bytes(data))
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]], copyConcurrency: 0, readTimeoutMs: SLOW_OK })
  await a.sync.addReplica('c', b.peerId)
  await waitFor(async () => await hasFile(b, 'c', '/f'))
  const [x, y] = await Promise.all([read(b, 'c', '/f'), read(b, 'c', '/f')])
  t.deepEqual(x, data)
  t.deepEqual(y, data)
  const chunks = [...chunkHashes(rec)].length
  t.is(b.sync.reader.counters.chunksReceived, chunks, 'each chunk crossed the network once')
  t.true(b.sync.reader.counters.joined > 0, 'the second reader joined fetches under way')
})

test('a wannabe that holds the full index fetches later updates before committing them, so its copy cannot chase new writes', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'u' })
  const old = await a.volumes.putFile('u', '/old', bytes(randomBytes(8 * 65536)))
  // No background copy: whatever b holds, it fetched while applying an update.
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]], copyConcurrency: 0, readTimeoutMs: SLOW_OK })
  await a.sync.addReplica('u', b.peerId)
  await waitFor(async () => await hasFile(b, 'u', '/old'))
  // The full pull has ended (so b has the whole index) when nothing is being pulled from a.
  await waitFor(async () => (await b.sync.members(await b.store.requireVolume('u'))).find(m => m.peerId === a.peerId)?.syncing === false ? true : undefined)
  const fresh = await a.volumes.putFile('u', '/fresh', bytes(randomBytes(5 * 65536)))
  await waitFor(async () => await hasFile(b, 'u', '/fresh'))
  t.true((await b.store.chunks.hasMany([...chunkHashes(fresh)])).every(Boolean), 'the update arrived with its chunks')
  t.false((await b.store.chunks.hasMany([...chunkHashes(old)])).some(Boolean), 'the old file is still left to the copy')
  t.is(await stateOf(b, 'u'), 'copy')
})

test('a read that gives up cancels a fetch no other reader waits for', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'x' })
  const rec = await a.volumes.putFile('x', '/f', bytes(randomBytes(8 * 65536)))
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]], copyConcurrency: 0, readTimeoutMs: SLOW_OK })
  await a.sync.addReplica('x', b.peerId)
  await waitFor(async () => await hasFile(b, 'x', '/f'))
  const vol = await b.store.requireVolume('x')
  const controller = new AbortController()
  const p = b.sync.readChunk(vol, [...chunkHashes(rec)][0], controller.signal)
  // Give up while the fetch is under way (or at once if it already finished).
  await waitFor(() => b.sync.reader.active > 0 || b.sync.reader.counters.reads > 0 ? true : undefined, 1)
  controller.abort()
  const outcome = await p.then(() => 'done', (err) => err.code)
  if (outcome === 'ABORTED') t.is(b.sync.reader.counters.cancelled, 1, 'the abandoned fetch was cancelled')
  else t.is(outcome, 'done', 'the fetch had already finished')
  // A later read of the same chunk still works.
  t.is((await read(b, 'x', '/f')).byteLength, 8 * 65536)
})

test('a restart in the middle of the copy resumes without fetching again what is held', async t => {
  t.timeout(240_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'm' })
  const total = 96 * MiB
  const digests = new Map<string, string>()
  for (let i = 0; i < 3; i++) {
    const src = randomSource(total / 3)
    await a.volumes.putFile('m', `/f${i}`, src.source)
    digests.set(`/f${i}`, src.digest())
  }
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]], copyConcurrency: 1 })
  await a.sync.addReplica('m', b.peerId)
  await waitFor(() => b.sync.copy.counters.bytesReceived >= 16 * MiB ? true : undefined, 20)
  await b.stop()
  const first = b.sync.fetcher.counters.bytesReceived
  t.true(first < total, 'stopped mid-copy')
  const b2 = await startNode(t, { api: false, dataDir: b.dataDir })
  t.is(await stateOf(b2, 'm'), 'copy')
  await waitFor(async () => await stateOf(b2, 'm') === 'steady' ? true : undefined, 100)
  // The fetcher counts every chunk the node received (copy, reads and pulls).
  const secondRun = b2.sync.fetcher.counters.bytesReceived
  t.true(secondRun <= total - first + 16 * MiB, `second run fetched ${secondRun} bytes after ${first} in the first (of ${total})`)
  for (const [path, hex] of digests) t.is(await digest(b2, 'm', path), hex)
})

test('writes on any member during the copy reach the wannabe, and it ends steady and identical', async t => {
  t.timeout(180_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'w' })
  for (let i = 0; i < 3; i++) await a.volumes.putFile('w', `/old${i}`, randomSource(16 * MiB).source)
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]], copyConcurrency: 1 })
  watchdog(t, 150_000, [a, b], 'w')
  // The heavy tests of this file share one process: seen from a, b's connection may lag its start.
  await waitFor(() => a.peers.isConnected(b.peerId) ? true : undefined)
  await a.sync.addReplica('w', b.peerId)
  await waitFor(async () => await hasFile(b, 'w', '/old2'))
  await a.volumes.putFile('w', '/new-on-a', bytes(Buffer.from('written on a during the copy')))
  await b.volumes.putFile('w', '/new-on-b', bytes(Buffer.from('written on the wannabe')))
  await a.volumes.removeFile('w', '/old0')
  await waitFor(async () => await stateOf(b, 'w') === 'steady' ? true : undefined, 100)
  const final = await converged([a, b], 'w', tr => tr.length === 4)
  t.deepEqual(final.map(l => l.split(' ')[0]), ['/new-on-a', '/new-on-b', '/old1', '/old2'])
  t.is((await read(a, 'w', '/new-on-b')).toString(), 'written on the wannabe')
})

test('a read of a chunk no reachable member holds fails with a clear error, not a hang', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'g' })
  await a.volumes.putFile('g', '/f', bytes(randomBytes(3 * 65536)))
  const b = await startNode(t, { api: '127.0.0.1:0', join: [a.multiaddrs()[0]], copyConcurrency: 0, readTimeoutMs: 3000 })
  await a.sync.addReplica('g', b.peerId)
  await waitFor(async () => await hasFile(b, 'g', '/f'))
  await a.stop()
  const res = await httpRequest(b.apiUrl!, { path: '/v1/volumes/g/files/f' })
  t.is(res.status, 503)
  t.is(res.json().error.code, 'CHUNK_MISSING')
  t.regex(res.json().error.message, /chunk [0-9a-f]{64}/)
  // A member that is reachable but lacks the chunk is named in the error.
  const c = await startNode(t, { api: false, join: [b.multiaddrs()[0]] })
  // With a stopped, b alone is no majority of the two: forced, as an operator would.
  await b.sync.addReplica('g', c.peerId, { force: true })
  await waitFor(async () => await hasFile(c, 'g', '/f'))
  const err = await t.throwsAsync(read(c, 'g', '/f'))
  t.is((err as any).code, 'CHUNK_MISSING')
  t.deepEqual((err as any).details.tried, [b.peerId])
})

test('a second wannabe copies from the first when the original holder is cut off', async t => {
  t.timeout(180_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'tree' })
  const src = randomSource(24 * MiB)
  await a.volumes.putFile('tree', '/data', src.source)
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.sync.addReplica('tree', b.peerId)
  await waitFor(async () => await stateOf(b, 'tree') === 'steady' ? true : undefined, 100)
  const c = await startNode(t, { api: false, join: [b.multiaddrs()[0]] })
  await c.peers.block([a.peerId])
  await a.peers.block([c.peerId])
  const added = await b.sync.addReplica('tree', c.peerId)
  t.is(added.volume.generation, 3)
  await waitFor(async () => await stateOf(c, 'tree') === 'steady' ? true : undefined, 100)
  t.is(await digest(c, 'tree', '/data'), src.digest())
  t.true(c.sync.fetcher.counters.bytesReceived >= 24 * MiB, 'c got the data, from b: a was cut off')
})
