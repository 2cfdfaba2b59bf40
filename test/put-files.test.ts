import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { pack } from 'tar-stream'
import { ReplicantError, Codes } from '../core/errors.js'
import { importTar } from '../api/archive.js'
import { PutBatcher } from '../replication/put-batcher.js'
import type { BufferedFile } from '../replication/put-files.js'
import { startNode, waitFor, httpRequest } from './helpers.js'
import type { FileRecord } from '../core/records.js'

async function all (it: AsyncIterable<FileRecord>): Promise<FileRecord[]> {
  const out: FileRecord[] = []
  for await (const r of it) out.push(r)
  return out
}
import { read } from './replication-helpers.js'

/** A tar stream of `files` (name -> bytes), made with tar-stream. */
async function * tarOf (files: Array<[string, Buffer]>): AsyncGenerator<Uint8Array> {
  const p = pack()
  for (const [name, body] of files) p.entry({ name, mode: 0o640, mtime: new Date(1_700_000_000_500) }, body)
  p.finalize()
  yield * (p as AsyncIterable<Buffer>)
}

test('putFiles: a batch is one commit; records in order, a path twice keeps the later with its vector after the earlier, shared chunks stored once; durable across a restart', async t => {
  const node = await startNode(t, { api: false })
  await node.createVolume({ name: 'v', chunkSize: 4096 })
  const shared = randomBytes(4096)
  const files = Array.from({ length: 300 }, (_, i) => ({ path: `/d/f${i}`, parts: [randomBytes(100 + i * 50)], mode: 0o600, mtime: 1_700_000_000_123 + i }))
  files.push({ path: '/s1', parts: [shared.subarray(0, 1000), shared.subarray(1000)], mode: 0o644, mtime: 1 })
  files.push({ path: '/s2', parts: [shared], mode: 0o644, mtime: 2 })
  files.push({ path: '/d/f7', parts: [Buffer.from('second write of f7')], mode: 0o644, mtime: 3 })
  const groups = node.store.counters.groups
  const recs = await node.volumes.putFiles('v', files)
  t.is(node.store.counters.groups, groups + 1, 'one group commit for the whole batch')
  t.deepEqual(recs.map(r => r.path), files.map(f => f.path))
  t.is(recs[7], recs[files.length - 1], 'both writes of /d/f7 answer with the record that holds')
  t.deepEqual(recs[7].vv, { [node.peerId]: 2 }, 'the later write of a path follows the earlier')
  t.deepEqual((await node.volumes.stat('v', '/s1')).chunks, (await node.volumes.stat('v', '/s2')).chunks)
  t.deepEqual((await node.volumes.stat('v', '/d/f3')).mtime, 1_700_000_000_126)
  t.is((await node.volumes.stat('v', '/d/f3')).mode, 0o600)

  const dir = node.dataDir
  await node.stop()
  const again = await startNode(t, { api: false, dataDir: dir })
  for (const [i, f] of files.entries()) {
    if (i === 7) continue
    t.deepEqual(await read(again, 'v', f.path), Buffer.concat(f.parts), f.path)
  }
  t.is((await read(again, 'v', '/d/f7')).toString(), 'second write of f7')
  t.is((await all(again.volumes.listFiles('v'))).length, 302)
})

test('putFiles: a bad path or an oversized batch is refused with a typed error, and nothing of the batch is written', async t => {
  const node = await startNode(t, { api: false })
  await node.createVolume({ name: 'v' })
  const good = { path: '/ok', parts: [Buffer.from('fine')] }
  const bad = await t.throwsAsync(node.volumes.putFiles('v', [good, { path: '/a/../../x', parts: [Buffer.from('escape')] }]))
  t.is((bad as ReplicantError).code, Codes.BAD_PATH)
  const big = await t.throwsAsync(node.volumes.putFiles('v', Array.from({ length: 1025 }, (_, i) => ({ path: `/f${i}`, parts: [] }))))
  t.is((big as ReplicantError).code, Codes.BAD_REQUEST)
  const mode = await t.throwsAsync(node.volumes.putFiles('v', [{ ...good, mode: 0o10000 }]))
  t.is((mode as ReplicantError).code, Codes.BAD_REQUEST)
  t.deepEqual(await all(node.volumes.listFiles('v')), [])
})

test('tar import: 600 small files go in a few batch commits (not one each), with their modes and mtimes', async t => {
  const node = await startNode(t, { api: false })
  await node.createVolume({ name: 'v' })
  const files = Array.from({ length: 600 }, (_, i): [string, Buffer] => [`dir${i % 3}/f${i}`, randomBytes(2000 + i)])
  const groups = node.store.counters.groups
  const result = await importTar(node.volumes, 'v', '/in', tarOf(files), new AbortController().signal)
  t.like(result, { files: 600, bytes: files.reduce((n, [, b]) => n + b.length, 0) })
  const used = node.store.counters.groups - groups
  t.true(used <= 4, `${used} groups for 600 files`)
  for (const [name, body] of files.filter((_, i) => i % 37 === 0)) {
    t.deepEqual(await read(node, 'v', `/in/${name}`), body)
    t.like(await node.volumes.stat('v', `/in/${name}`), { mode: 0o640, mtime: 1_700_000_000_000 })
  }
})

test('putFiles on an all-mode volume with other members: each file is committed with them, visible on every member on return', async t => {
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'acid', replicas: [b.peerId], writeMode: 'all' })
  await waitFor(async () => (await b.store.getVolume('acid')) !== undefined ? true : undefined)
  const files = Array.from({ length: 20 }, (_, i) => ({ path: `/f${i}`, parts: [randomBytes(3000)] }))
  const recs = await a.volumes.putFiles('acid', files)
  t.deepEqual(recs.map(r => r.path), files.map(f => f.path))
  // No waiting: acknowledged in all mode means stored on every member.
  for (const f of files) t.deepEqual(await read(b, 'acid', f.path), f.parts[0])
})

test('small HTTP PUTs arriving together are written in shared batches; each is answered with its own record and is there after a restart', async t => {
  const node = await startNode(t)
  await node.createVolume({ name: 'v' })
  const bodies = Array.from({ length: 64 }, (_, i) => randomBytes(1000 + i * 100))
  const before = { ...node.volumes.batcher.counters }
  const answers = await Promise.all(bodies.map(async (body, i) => await httpRequest(node.apiUrl!, { method: 'PUT', path: `/v1/volumes/v/files/small/f${i}`, body })))
  t.true(answers.every(a => a.status === 201))
  t.is(new Set(answers.map(a => a.json().seq)).size, 64, 'one seq each')
  const puts = node.volumes.batcher.counters.puts - before.puts
  const batches = node.volumes.batcher.counters.batches - before.batches
  t.is(puts, 64)
  t.true(batches < 32, `${batches} batches for 64 puts`)
  // The operator sees the same on /metrics.
  const metrics = (await httpRequest(node.apiUrl!, { path: '/metrics' })).body.toString()
  const value = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(metrics)?.[1])
  t.is(value('replicant_batched_puts_total'), node.volumes.batcher.counters.puts)
  t.is(value('replicant_put_batches_total'), node.volumes.batcher.counters.batches)
  t.is(value('replicant_grouped_commits_total'), node.store.counters.groupedCommits)
  const dir = node.dataDir
  await node.stop()
  const again = await startNode(t, { api: false, dataDir: dir })
  for (const [i, body] of bodies.entries()) t.deepEqual(await read(again, 'v', `/small/f${i}`), body)
})

test('PutBatcher: puts queued while a batch is written go together in the next; bytes held are bounded and given back; a failed batch fails each of its puts', async t => {
  const written: string[][] = []
  let release: () => void = () => {}
  let fail = false
  const batcher = new PutBatcher(async (_vol, files) => {
    written.push(files.map(f => f.path))
    await new Promise<void>(resolve => { release = resolve })
    if (fail) throw new ReplicantError(Codes.STORE_CLOSED, 'store is closed')
    return files.map((f, i) => ({ path: f.path, seq: i }) as unknown as FileRecord)
  }, 1000)
  const file = (path: string): BufferedFile => ({ path, parts: [Buffer.alloc(100)], mode: 0o644, mtime: 0 })
  t.true(batcher.admit(600))
  t.true(batcher.admit(400))
  t.false(batcher.admit(1), 'over the limit: the caller streams instead')
  const first = batcher.put('v', file('/a'))
  const more = ['/b', '/c', '/b', '/d'].map(p => batcher.put('v', file(p)))
  await waitFor(() => written.length === 1 ? true : undefined)
  release()
  await first
  await waitFor(() => written.length === 2 ? true : undefined)
  t.deepEqual(written[1], ['/b', '/c'], 'the second put of /b waits for the batch after')
  release()
  await waitFor(() => written.length === 3 ? true : undefined)
  t.deepEqual(written[2], ['/b', '/d'])
  fail = true
  release()
  for (const p of more.slice(2)) t.is((await t.throwsAsync<ReplicantError>(p))?.code, Codes.STORE_CLOSED)
  t.deepEqual((await Promise.all(more.slice(0, 2))).map(r => r.path), ['/b', '/c'])
  batcher.release(600)
  batcher.release(400)
  t.is(batcher.heldBytes, 0)
  t.true(batcher.admit(1000))
  t.deepEqual(batcher.counters, { puts: 3, batches: 2 })
})
