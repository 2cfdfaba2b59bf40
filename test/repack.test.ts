import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { readdir, stat, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { startNode, tmpDir, httpRequest, runCli, sha256Hex, killChildAt } from './helpers.js'
import { bytes, read } from './replication-helpers.js'
import { Store } from '../store/store.js'
import { chunkHashes } from '../core/records.js'
import { sha256 } from '../store/chunk-store.js'
import type { ReplicantNode } from '../node/replicant-node.js'

/*
 * Layout used throughout: 64 KiB chunks, 384 KiB packs, files of two random chunks written one
 * after another, so each pack holds exactly three files (file i in pack floor(i/3) + 1) and
 * the expected figures are exact.
 */
const KiB = 1024
const CHUNK = 64 * KiB
const PACK = 6 * CHUNK
const FILE = 2 * CHUNK

/** Sizes of the pack files of a data dir, by name (fs.stat: what is on disk). */
async function packs (dataDir: string): Promise<Map<string, number>> {
  const dir = join(dataDir, 'chunks')
  const out = new Map<string, number>()
  for (const f of (await readdir(dir)).filter(f => f.endsWith('.dat')).sort()) out.set(f, (await stat(join(dir, f))).size)
  return out
}

const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0)
const packFile = (id: number): string => `pack-${String(id).padStart(8, '0')}.dat`

/** Writes files /f0../f{n-1} (two random chunks each); returns path -> sha256. */
async function writeFiles (node: ReplicantNode, vol: string, n: number): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (let i = 0; i < n; i++) {
    const data = randomBytes(FILE)
    await node.volumes.putFile(vol, `/f${i}`, bytes(data))
    out.set(`/f${i}`, sha256Hex(data))
  }
  return out
}

async function startSmallPacks (t: ExecutionContext, api = false): Promise<ReplicantNode> {
  const node = await startNode(t, { ...(api ? {} : { api: false }), packTargetBytes: PACK })
  await node.createVolume({ name: 'r', chunkSize: CHUNK })
  return node
}

/** Deletes /f0-/f14 (packs 1-5 wholly dead) and two of every three later files (packs 6-10 one third live). */
async function deleteMost (node: ReplicantNode, files: Map<string, string>): Promise<void> {
  for (let i = 0; i < 30; i++) {
    if (i >= 15 && i % 3 === 2) continue
    await node.volumes.removeFile('r', `/f${i}`)
    files.delete(`/f${i}`)
  }
}

async function assertReadsBack (t: ExecutionContext, node: ReplicantNode, files: Map<string, string>): Promise<void> {
  for (const [path, hex] of files) t.is(sha256Hex(await read(node, 'r', path)), hex, path)
}

test('gc + repack: pack bytes on disk drop by the dead bytes, and every remaining file reads back identical', async t => {
  const a = await startSmallPacks(t, true)
  const files = await writeFiles(a, 'r', 30)
  const before = await packs(a.dataDir)
  t.is(total(before), 30 * FILE, 'ten full packs and an empty active one')
  await deleteMost(a, files)
  const dead = 25 * FILE

  const res = await httpRequest(a.apiUrl!, { method: 'POST', path: '/v1/gc', body: JSON.stringify({ youngSeconds: 0 }), headers: { 'content-type': 'application/json' } })
  t.is(res.status, 200)
  const r = res.json()
  // The fields operators script against are all still there.
  t.is(r.scanned, 60)
  t.is(r.deleted, 50)
  t.is(r.kept, 10)
  t.is(typeof r.ms, 'number')
  t.deepEqual(r.repack, { packsRewritten: 5, packsRemoved: 10, bytesCopied: 5 * FILE, bytesFreed: dead })

  const after = await packs(a.dataDir)
  t.is(total(before) - total(after), dead, 'the drop on disk is exactly the dead bytes')
  t.is(total(after), 5 * FILE, 'what is left is the live files')
  for (let id = 1; id <= 10; id++) t.false(after.has(packFile(id)), `${packFile(id)} unlinked`)
  t.is(r.disk.packBytes, total(after), 'gc reports the pack bytes now on disk')
  t.is((await httpRequest(a.apiUrl!, { path: '/v1/status' })).json().disk.packBytes, total(after), 'so does status')
  await assertReadsBack(t, a, files)

  // The CLI keeps its gc line and adds the repack figures on a line of their own.
  const cli = await runCli(['gc', '--young', '0'], { dataDir: a.dataDir })
  t.is(cli.code, 0, cli.stderr)
  const lines = cli.stdout.split('\n')
  t.regex(lines[0], /^gc: scanned 10 chunks, deleted 0, kept 10 \(\d+ ms\); packs 640\.0 KiB, index .+$/)
  t.is(lines[1], 'repack: nothing to give back (no sealed pack is empty or mostly dead)', 'the copy (pack 11) is all live; pack 12 is active')
  await assertReadsBack(t, a, files)
})

test('a chunk shared by two files survives when one is deleted and its pack is repacked; later puts dedupe against its new place', async t => {
  const a = await startSmallPacks(t)
  const shared = randomBytes(CHUNK)
  const fileA = Buffer.concat([shared, randomBytes(4 * CHUNK)])
  const fileB = Buffer.concat([shared, randomBytes(CHUNK)])
  await a.volumes.putFile('r', '/a', bytes(fileA))
  const recB = await a.volumes.putFile('r', '/b', bytes(fileB)) // one new chunk: pack 1 is full (6 chunks)
  t.deepEqual([...(await packs(a.dataDir)).values()], [PACK, 0])
  await a.volumes.removeFile('r', '/a')

  const r = await a.store.collectGarbage({ youngMs: 0 })
  t.is(r.deleted, 4)
  t.deepEqual(r.repack, { packsRewritten: 1, packsRemoved: 1, bytesCopied: 2 * CHUNK, bytesFreed: PACK - 2 * CHUNK })
  t.false((await packs(a.dataDir)).has(packFile(1)))
  t.true((await read(a, 'r', '/b')).equals(fileB))
  const s = [...chunkHashes(recB)][0]
  t.is(await a.store.refCount(s), 1)

  // A put that finds the shared chunk already stored (has() is true) writes only a record.
  const fileC = Buffer.concat([shared, Buffer.from('tail')])
  await a.volumes.putFile('r', '/c', bytes(fileC))
  t.true((await read(a, 'r', '/c')).equals(fileC))
  t.is(total(await packs(a.dataDir)), 2 * CHUNK + 4, 'only the new tail chunk was appended')
})

test('chunks a snapshot still holds survive the repack of their pack', async t => {
  const a = await startSmallPacks(t)
  const files = await writeFiles(a, 'r', 9) // packs 1-3
  for (let i = 0; i < 8; i++) await a.volumes.removeFile('r', `/f${i}`)
  await a.volumes.createSnapshot('r', 's')
  await a.volumes.removeFile('r', '/f8') // now only the snapshot shows /f8

  const r = await a.store.collectGarbage({ youngMs: 0 })
  t.is(r.deleted, 16)
  t.deepEqual(r.repack, { packsRewritten: 1, packsRemoved: 3, bytesCopied: FILE, bytesFreed: 3 * PACK - FILE })
  t.is(total(await packs(a.dataDir)), FILE)
  const rec = await a.volumes.statAt('r', 's', '/f8')
  const parts: Uint8Array[] = []
  for await (const p of a.volumes.readFile('r', rec)) parts.push(p)
  t.is(sha256Hex(Buffer.concat(parts)), files.get('/f8')!)
})

/** Runs the crash child until it pauses at `point`, kills it with -9; returns the live files it reported. */
async function crashRepackAt (t: ExecutionContext, dir: string, point: string): Promise<Map<string, string>> {
  const out = await killChildAt(t, 'repack-crash-child.js', [dir, point], `paused ${point}\n`)
  const line = out.split('\n').find(l => l.startsWith('live '))!
  return new Map(Object.entries(JSON.parse(line.slice(5)) as Record<string, string>))
}

/** Every live file of volume r reads back with its sha256, chunk by chunk through getMany. */
async function assertStoreReads (t: ExecutionContext, store: Store, live: Map<string, string>): Promise<void> {
  let n = 0
  for await (const rec of store.listFiles('r')) {
    if (rec.deleted) continue
    n++
    const chunks = await store.chunks.getMany([...chunkHashes(rec)])
    t.true(chunks.every(c => c !== undefined), rec.path)
    t.is(sha256Hex(Buffer.concat(chunks as Uint8Array[])), live.get(rec.path)!, rec.path)
  }
  t.is(n, live.size)
}

for (const point of ['copied', 'switched'] as const) {
  test(`repack killed with -9 after its copy is ${point === 'copied' ? 'synced, before the switch' : 'switched, before the unlink'}: nothing referenced is lost, a second repack cleans up`, async t => {
    const dir = await tmpDir(t)
    const live = await crashRepackAt(t, dir, point)
    t.is(live.size, 5)
    const store = await Store.open(dir, { packTargetBytes: PACK })
    t.teardown(async () => { await store.close() })
    await assertStoreReads(t, store, live)
    const onDisk = await packs(dir)
    // Packs 1-5 (wholly dead) went before the copy; 6-10 are still there; so is the copy (pack 11).
    for (let id = 1; id <= 5; id++) t.false(onDisk.has(packFile(id)))
    for (let id = 6; id <= 11; id++) t.true(onDisk.has(packFile(id)))
    t.is(onDisk.get(packFile(11)), 5 * FILE)

    const r = await store.repack()
    // Before the switch the locations still name packs 6-10: they are copied again and the
    // first copy is dead. After it, packs 6-10 are dead and the copy is the live one.
    if (point === 'copied') t.deepEqual(r, { packsRewritten: 5, packsRemoved: 7, bytesCopied: 5 * FILE, bytesFreed: 5 * PACK })
    else t.deepEqual(r, { packsRewritten: 0, packsRemoved: 6, bytesCopied: 0, bytesFreed: 5 * PACK })
    t.is(total(await packs(dir)), 5 * FILE, 'only live bytes are left on disk')
    await assertStoreReads(t, store, live)
    t.deepEqual(await store.repack(), { packsRewritten: 0, packsRemoved: 0, bytesCopied: 0, bytesFreed: 0 }, 'nothing left to do')
  })
}

test('reads running during a repack all return the right bytes, also one whose pack is unlinked between look-up and read', async t => {
  const a = await startSmallPacks(t)
  const files = await writeFiles(a, 'r', 30)
  await deleteMost(a, files)

  // One read is held between its location look-up and its read while the repack moves the
  // chunk and unlinks its pack: it must look the location up again, once.
  const loc = (a.store.chunks as unknown as { loc: { getMany: (...args: unknown[]) => Promise<unknown> } }).loc
  const lookUp = loc.getMany.bind(loc)
  let held: (() => void) | undefined
  const release = new Promise<void>(resolve => { held = resolve })
  let looked!: () => void
  const lookedUp = new Promise<void>(resolve => { looked = resolve })
  let armed = true
  let released = false
  let lookUpsAfterRelease = 0
  loc.getMany = async (...args: unknown[]) => {
    if (released) lookUpsAfterRelease++
    const r = await lookUp(...args)
    if (armed) { armed = false; looked(); await release }
    return r
  }
  const f17 = (await a.store.getFile('r', '/f17'))!
  const heldRead = a.store.chunks.getMany([...chunkHashes(f17)])
  await lookedUp

  // Meanwhile, readers of every live file, round after round, until the repack is done.
  let repacking = true
  let reads = 0
  const reader = async (): Promise<void> => {
    while (repacking) {
      for (const [path, hex] of files) {
        t.is(sha256Hex(await read(a, 'r', path)), hex, path)
        reads++
      }
    }
  }
  const readers = [reader(), reader()]
  const r = await a.store.collectGarbage({ youngMs: 0 })
  const readsDuringRepack = reads
  repacking = false
  await Promise.all(readers)
  t.deepEqual(r.repack, { packsRewritten: 5, packsRemoved: 10, bytesCopied: 5 * FILE, bytesFreed: 25 * FILE })
  t.true(readsDuringRepack > 0)
  t.log(`${readsDuringRepack} file reads completed while gc + repack ran`)

  t.false((await packs(a.dataDir)).has(packFile(6)), '/f17 was in pack 6, now unlinked')
  released = true
  held!()
  const got = await heldRead
  t.is(sha256Hex(Buffer.concat(got as Uint8Array[])), files.get('/f17')!)
  t.is(lookUpsAfterRelease, 1, 'the held read looked its location up once more')
  await assertReadsBack(t, a, files)
})

test('the level chunk backend has no packs: repack does nothing', async t => {
  const dir = await tmpDir(t)
  const store = await Store.open(dir, { chunkBackend: 'level' })
  t.teardown(async () => { await store.close() })
  t.deepEqual(await store.repack(), { packsRewritten: 0, packsRemoved: 0, bytesCopied: 0, bytesFreed: 0 })
  t.deepEqual((await store.collectGarbage({ youngMs: 0 })).repack, { packsRewritten: 0, packsRemoved: 0, bytesCopied: 0, bytesFreed: 0 })
})

test('a chunk whose bytes a crash lost (location past the end of its pack) keeps its location and its pack; the rest moves', async t => {
  const a = await startSmallPacks(t)
  await writeFiles(a, 'r', 3) // pack 1: f0, f1, f2 (f2 at 4 to 6 chunks)
  await a.volumes.removeFile('r', '/f0')
  await a.volumes.removeFile('r', '/f1')
  // As if the pack's tail was never synced before a crash: f2's second chunk is cut short.
  await truncate(join(a.dataDir, 'chunks', packFile(1)), 5 * CHUNK + 100)
  const [whole, cut] = [...chunkHashes((await a.store.getFile('r', '/f2'))!)]

  const r = await a.store.collectGarbage({ youngMs: 0 })
  t.deepEqual(r.repack, { packsRewritten: 0, packsRemoved: 0, bytesCopied: CHUNK, bytesFreed: -CHUNK })
  t.true((await packs(a.dataDir)).has(packFile(1)), 'the pack the cut chunk is located in stays')
  t.deepEqual(Buffer.from(sha256(Buffer.from((await a.store.chunks.get(whole))!))), Buffer.from(whole), 'the readable chunk (copied: bytesCopied) reads intact')
  // Read, the cut chunk is missing (CHUNK_MISSING to a client, fetched where a peer has it) and
  // its stale location is dropped, so it is fetched or written again rather than claimed.
  t.is(await a.store.chunks.get(cut), undefined)
  t.false(await a.store.chunks.has(cut))
})
