/**
 * dumps (issue 8): dump and restore throughput next to a same-run raw file copy, and the join
 * time of a member seeded from a dump after 1% change next to a full-copy join.
 *
 * Data set (--full: the 1 GiB set, 8 x 128 MiB + 10,000 x 16 KiB; default 4 x 64 MiB
 * + 2,000 x 16 KiB; --quick 3 x 32 MiB + 2,000 x 16 KiB, about 128 MiB) written through the
 * HTTP API on a node process A. Every repetition starts from fresh nodes and data dirs:
 * 1. dump: snapshot `s0` of the volume, GET .../dump?snapshot=s0 streamed into a file on the
 *    temp disk, then fsync of that file (the client side of `replicant dump VOLUME --snapshot
 *    s0 -o FILE`). Baseline, same run, same disk: a raw copy of that dump file (node:fs read and
 *    write streams, 1 MiB reads, fsync at the end). MB/s = dump file bytes / s (10^6 B/s).
 * 2. restore: a fresh node C (fresh data dir, joined to A but no member) restores the dump
 *    (POST /v1/restore, what `replicant restore FILE` does), timed from the first byte sent to
 *    the reply; checked: C's listing equals A's listing of s0 (path, size, mode, mtime, chunk
 *    count, version vector).
 * 3. join: 1% of the bytes then change on A (one 64 KiB chunk in every 100 of each large file,
 *    every 100th small file rewritten). C (seeded from the dump) is added as a member
 *    (add-replica on A); and a fresh node D with no dump is added as a member (a full copy).
 *    Each is timed from the add-replica call until the joiner has applied A's whole change log
 *    (its watermark for A reaches A's seq), is steady and lacks nothing; bytes received are the
 *    joiner's chunk-fetch counters (chunk payload; index records come on top). The two joins
 *    run one after the other, the first joiner removed (remove-replica) and stopped before the
 *    second is added, so each copies from A alone; the order alternates by repetition.
 *    Checked after each join: the joiner's listing equals A's, and every file it serves (GET)
 *    has the sha256 the data generator gives for the changed data set.
 * Medians of --reps (default 3). --profile: one repetition, A and C under --cpu-prof; prints
 * A's profile during the dump and C's during the restore.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, rm, stat } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { KiB, MiB, Samples, fmt, fmtBytes, mbps, median, now, pool, procCpuSeconds, ratio, selfCpuSeconds, type Suite, type SuiteContext } from './lib.js'
import { VOLUME, dataSet, type DataSet, fetchedBytes, monotonicMicros, printProfiles, putFiles, waitConnected } from './cluster.js'
import { countedBytes, countedStream } from './data.js'
import { NodeProcess } from './node-proc.js'

function sizes (ctx: SuiteContext): DataSet {
  return dataSet(ctx, { bigCount: 3, bigSize: 32 * MiB, smallCount: 2000 })
}

const SMALL = 16 * KiB
/** The volume's chunk size (the node default): changes are whole aligned chunks. */
const CHUNK = 64 * KiB
/** One chunk in CHANGE_EVERY of every large file, and every CHANGE_EVERY-th small file, change. */
const CHANGE_EVERY = 100
const SMALL_ID = 1000

const bigChanged = (i: number, k: number): boolean => k % CHANGE_EVERY === (i * 37) % CHANGE_EVERY
const smallChanged = (k: number): boolean => k % CHANGE_EVERY === 0

/** Large file `i` after the change: counted data with the selected 64 KiB chunks replaced. */
function * changedBig (i: number, size: number): Generator<Buffer> {
  let off = 0
  for (const piece of countedStream(i, size)) {
    for (let at = 0; at < piece.byteLength; at += CHUNK) {
      const k = (off + at) / CHUNK
      if (bigChanged(i, k)) countedBytes(2_000_000 + i * 100_000 + k, CHUNK).copy(piece, at)
    }
    off += piece.byteLength
    yield piece
  }
}

const smallAfter = (k: number): Generator<Buffer> => countedStream(smallChanged(k) ? 500_000 + k : SMALL_ID + k, SMALL)

function changedBytes (sz: DataSet): number {
  let n = 0
  for (let i = 0; i < sz.bigCount; i++) for (let k = 0; k < sz.bigSize / CHUNK; k++) if (bigChanged(i, k)) n += CHUNK
  for (let k = 0; k < sz.smallCount; k++) if (smallChanged(k)) n += SMALL
  return n
}

/** sha256 of every file of the data set after the change, from the generator (not the system measured). */
function expectedHashes (sz: DataSet): Map<string, string> {
  const out = new Map<string, string>()
  const hash = (pieces: Iterable<Uint8Array>): string => { const h = createHash('sha256'); for (const p of pieces) h.update(p); return h.digest('hex') }
  for (let i = 0; i < sz.bigCount; i++) out.set(`/big/${i}`, hash(changedBig(i, sz.bigSize)))
  for (let k = 0; k < sz.smallCount; k++) out.set(`/small/${k}`, hash(smallAfter(k)))
  return out
}

async function fsyncFile (path: string): Promise<void> {
  const fh = await open(path, 'r+')
  try { await fh.sync() } finally { await fh.close() }
}

/** A listing as comparable lines: everything the API lists but the node-local seq. */
async function listing (node: NodeProcess, snapshot?: string): Promise<string[]> {
  const { files } = await node.client.list(VOLUME, undefined, snapshot !== undefined ? { snapshot } : {})
  return (files as Array<{ path: string, size: number, mode: number, mtime: number, chunks: number, version: Record<string, number> }>).map(f => {
    const vv = Object.keys(f.version).sort().map(k => `${k}=${f.version[k]}`).join(',')
    return `${f.path} ${f.size} ${f.mode} ${f.mtime} ${f.chunks} ${vv}`
  }).sort()
}

function sameListing (what: string, got: string[], want: string[]): void {
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} files listed, expected ${want.length}`)
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) throw new Error(`${what}: listing differs at line ${i}: got '${got[i]}', expected '${want[i]}'`)
  }
}

/** GETs every file from `node` and checks its sha256 against the generator's. */
async function checkContent (what: string, node: NodeProcess, expected: Map<string, string>): Promise<void> {
  await pool(expected.keys(), 4, async (path) => {
    const h = createHash('sha256')
    for await (const p of await node.client.open(VOLUME, path)) h.update(p as Buffer)
    const got = h.digest('hex')
    if (got !== expected.get(path)) throw new Error(`${what}: ${path} has sha256 ${got.slice(0, 16)}, expected ${expected.get(path)!.slice(0, 16)}`)
  })
}

/** The joiner has applied A's whole log (watermark for A >= A's seq), holds every chunk and lists every file. */
async function joined (node: NodeProcess, a: NodeProcess, files: number, timeoutMs = 1_800_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    try {
      const [ia, ib] = await Promise.all([a.client.volumeInfo(VOLUME), node.client.volumeInfo(VOLUME)])
      const wm = (ib.memberStates as Array<{ peerId: string, watermark: number | null }>).find(m => m.peerId === a.peerId)?.watermark ?? 0
      last = `watermark ${String(wm)}/${String(ia.seq)}, files ${String(ib.files)}/${files}, state ${String(ib.state)}, lacking ${JSON.stringify(ib.lacking)}, repairing ${String(ib.repairing)}`
      if (wm >= ia.seq && ib.files === files && ib.state === 'steady' && ib.lacking.files === 0 && ib.repairing !== true) return
    } catch (err) {
      last = (err as Error).message
    }
    await sleep(50)
  }
  throw new Error(`node ${node.peerId} did not join: ${last}`)
}

function decisionOf (info: any, peer: string): string {
  const d = Array.isArray(info.decisions) ? (info.decisions as Array<{ peer?: string, decision: string }>).filter(x => x.peer === undefined || x.peer === peer) : []
  return d.length > 0 ? d.map(x => x.decision).join(', ') : '(none recorded)'
}

async function startNode (ctx: SuiteContext, label: string, join0: string | undefined, profile: boolean): Promise<{ node: NodeProcess, dir: string, prof?: string }> {
  const dir = await ctx.tempDir(label)
  let prof: string | undefined
  const nodeArgs: string[] = []
  if (profile) {
    prof = join(dir, 'prof')
    await mkdir(prof)
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${prof}`)
  }
  const node = await NodeProcess.start({ dataDir: join(dir, 'data'), nodeArgs, startArgs: join0 !== undefined ? ['--join', join0] : [] })
  return { node, dir, ...(prof !== undefined ? { prof } : {}) }
}

async function run (ctx: SuiteContext): Promise<void> {
  const sz = sizes(ctx)
  const profile = ctx.flag('profile') === true
  const reps = profile ? 1 : ctx.flags.reps
  const files = sz.bigCount + sz.smallCount
  const total = sz.bigCount * sz.bigSize + sz.smallCount * SMALL
  const changed = changedBytes(sz)
  const expected = expectedHashes(sz)
  ctx.log(`  data set: ${sz.bigCount} x ${fmtBytes(sz.bigSize)} + ${sz.smallCount} x 16 KiB = ${fmtBytes(total)}; change: ${fmtBytes(changed)} (${fmt(100 * changed / total, 2)}%)`)
  const s = new Samples()
  let dumpSize = 0
  const decisions = { seeded: new Set<string>(), full: new Set<string>() }
  for (let r = 0; r < reps; r++) {
    const load0 = loadavg()[0]
    const A = await startNode(ctx, `dumps${r}-a`, undefined, profile)
    const a = A.node
    await a.client.createVolume({ name: VOLUME })
    await putFiles(a, 'big/', sz.bigCount, sz.bigSize, 2)
    await putFiles(a, 'small/', sz.smallCount, SMALL, 8, SMALL_ID)
    await a.client.createSnapshot(VOLUME, 's0')
    const atS0 = await listing(a, 's0')

    // 1. dump, then the raw copy of the dump file (same disk, same size).
    const work = await ctx.tempDir(`dumps${r}-files`)
    const dumpFile = join(work, 'volume.dump')
    let c0 = await procCpuSeconds(a.pid)
    let b0 = selfCpuSeconds()
    const dumpWindow = { from: monotonicMicros(), to: 0 }
    let t0 = now()
    await a.client.dump(VOLUME, 's0', createWriteStream(dumpFile))
    await fsyncFile(dumpFile)
    const dumpS = (now() - t0) / 1000
    dumpWindow.to = monotonicMicros()
    s.add('dumpCpuA', await procCpuSeconds(a.pid) - c0)
    s.add('dumpCpuClient', selfCpuSeconds() - b0)
    dumpSize = (await stat(dumpFile)).size
    s.add('dumpS', dumpS)
    s.add('dumpMBs', mbps(dumpSize, dumpS))
    const copyFile = join(work, 'raw.copy')
    t0 = now()
    await pipeline(createReadStream(dumpFile, { highWaterMark: MiB }), createWriteStream(copyFile))
    await fsyncFile(copyFile)
    const rawS = (now() - t0) / 1000
    s.add('rawMBs', mbps(dumpSize, rawS))
    await rm(copyFile)

    // 2. restore on a fresh node C (joined to A, no member yet).
    const joinAddr = (await a.client.status()).multiaddrs[0]
    const C = await startNode(ctx, `dumps${r}-c`, joinAddr, profile)
    const c = C.node
    await waitConnected(c, a.peerId)
    c0 = await procCpuSeconds(c.pid)
    b0 = selfCpuSeconds()
    const restoreWindow = { from: monotonicMicros(), to: 0 }
    t0 = now()
    // When the file is read to its end the upload is through (within socket buffers): the rest
    // of the restore is the node's verify and apply passes over its spooled copy.
    const upload = createReadStream(dumpFile, { highWaterMark: MiB })
    let uploadS = NaN
    upload.once('end', () => { uploadS = (now() - t0) / 1000 })
    const restored = await c.client.restore(upload, dumpSize)
    const restoreS = (now() - t0) / 1000
    s.add('restoreCpuClient', selfCpuSeconds() - b0)
    s.add('uploadS', uploadS)
    restoreWindow.to = monotonicMicros()
    s.add('restoreCpuC', await procCpuSeconds(c.pid) - c0)
    s.add('restoreS', restoreS)
    s.add('restoreMBs', mbps(dumpSize, restoreS))
    if (restored.files !== files) throw new Error(`restore reported ${String(restored.files)} files, expected ${files}`)
    sameListing(`rep ${r + 1}: restored C vs A's snapshot s0`, await listing(c), atS0)

    // 3. 1% change on A, then the joins: C (seeded) and a fresh D (full copy), order alternating.
    await pool([...Array(sz.bigCount).keys()], 2, async (i) => {
      await a.client.put(VOLUME, `big/${i}`, Readable.from(changedBig(i, sz.bigSize)), { size: sz.bigSize })
    })
    for (let k = 0; k < sz.smallCount; k++) {
      if (smallChanged(k)) await a.client.put(VOLUME, `small/${k}`, Readable.from(smallAfter(k)), { size: SMALL })
    }
    const afterChange = await listing(a)
    const D = await startNode(ctx, `dumps${r}-d`, joinAddr, false)
    const d = D.node
    await waitConnected(d, a.peerId)
    const preC = await fetchedBytes(c)
    const preD = await fetchedBytes(d)
    s.add('preJoinBytesC', preC.bytesReceived)
    const order: Array<['seeded' | 'full', NodeProcess]> = r % 2 === 0 ? [['seeded', c], ['full', d]] : [['full', d], ['seeded', c]]
    const line: string[] = []
    for (const [i, [kind, node]] of order.entries()) {
      const before = kind === 'seeded' ? preC : preD
      t0 = now()
      await a.client.addReplica(VOLUME, node.peerId)
      await joined(node, a, files)
      const joinS = (now() - t0) / 1000
      const got = (await fetchedBytes(node)).bytesReceived - before.bytesReceived
      s.add(`${kind}S`, joinS)
      s.add(`${kind}Bytes`, got)
      decisions[kind].add(decisionOf(await node.client.volumeInfo(VOLUME), a.peerId))
      line.push(`${kind} join ${fmt(joinS, 2)} s, ${fmtBytes(got)} received`)
      // Checked outside the clock: the same tree as A, and every file's bytes.
      sameListing(`rep ${r + 1}: ${kind} joiner vs A`, await listing(node), afterChange)
      await checkContent(`rep ${r + 1}: ${kind} joiner`, node, expected)
      if (i === 0) {
        await a.client.removeReplica(VOLUME, node.peerId)
        await node.stop()
      }
    }
    ctx.log(`  rep ${r + 1}/${reps}: dump ${fmt(s.all('dumpMBs')[r])} MB/s, raw copy ${fmt(s.all('rawMBs')[r])} MB/s, restore ${fmt(s.all('restoreMBs')[r])} MB/s; ${line.join('; ')} (checked: listings, ${expected.size} sha256; load ${fmt(load0, 1)} -> ${fmt(loadavg()[0], 1)})`)
    await a.stop(); await c.stop(); await d.stop()
    if (profile) {
      await printProfiles(ctx, ['A during the dump'], [A.prof], 20, dumpWindow)
      await printProfiles(ctx, ['C during the restore'], [C.prof], 20, restoreWindow)
    }
    for (const dir of [A.dir, C.dir, D.dir, work]) await rm(dir, { recursive: true, force: true })
  }

  const raw = s.med('rawMBs')
  const runs = (name: string, digits?: number): string => s.all(name).map(x => fmt(x, digits)).join(' / ')
  // Same-run ratios: each repetition's figure over that repetition's baseline, then the median.
  const perRun = (name: string, base: string): number[] => s.all(name).map((x, i) => x / s.all(base)[i])
  const sameRun = (name: string, base: string): string => `${fmt(median(perRun(name, base)), 2)}x (${perRun(name, base).map(x => fmt(x, 2)).join(' / ')})`
  ctx.table({
    title: `dump and restore of ${fmtBytes(total)} (${files} files; dump file ${fmtBytes(dumpSize)}), median of ${reps}`,
    columns: ['operation', 's', 'MB/s', 'vs raw copy: median of same-run ratios (each run)', 'node CPU s', 'client CPU s', 'runs (MB/s)'],
    rows: [
      ['dump to a file, fsync (A)', fmt(s.med('dumpS'), 2), fmt(s.med('dumpMBs')), sameRun('dumpMBs', 'rawMBs'), fmt(s.med('dumpCpuA')), fmt(s.med('dumpCpuClient')), runs('dumpMBs')],
      ['restore on a fresh node (C)', fmt(s.med('restoreS'), 2), fmt(s.med('restoreMBs')), sameRun('restoreMBs', 'rawMBs'), fmt(s.med('restoreCpuC')), fmt(s.med('restoreCpuClient')), runs('restoreMBs')],
      ['  of which upload + spool (until the file is read)', fmt(s.med('uploadS'), 2), '-', '-', '-', '-', runs('uploadS', 2) + ' s'],
      ['baseline: raw copy of the dump file, fsync', fmt(dumpSize / 1e6 / raw, 2), fmt(raw), '1.00x', '-', '-', runs('rawMBs')]
    ],
    notes: ['MB/s = dump file bytes / wall-clock s (10^6 B/s). Ratios: each run\'s figure over the same run\'s raw copy (measured right after the dump, same disk), median over runs. Node CPU: user + system s of the node process; client CPU: of the benchmark process (the client side of the CLI).',
      'Dump: from the GET to the fsync of the file. Restore: from the first byte sent to the reply (the node spools the upload to its disk, verifies it, then applies it).']
  })
  const seeded = s.med('seededS')
  const full = s.med('fullS')
  ctx.table({
    title: `join after ${fmtBytes(changed)} changed (${fmt(100 * changed / total, 2)}% of ${fmtBytes(total)}): member seeded from the dump vs full copy, median of ${reps}`,
    columns: ['joiner', 's', 'chunk bytes received', 'received / changed', 'decision', 'runs (s) / same-run ratios'],
    rows: [
      ['C, restored from the dump of s0', fmt(seeded, 2), fmtBytes(s.med('seededBytes')), ratio(s.med('seededBytes'), changed), [...decisions.seeded].join(' | '), runs('seededS', 2)],
      ['D, fresh (full copy)', fmt(full, 2), fmtBytes(s.med('fullBytes')), ratio(s.med('fullBytes'), changed), [...decisions.full].join(' | '), runs('fullS', 2)],
      ['seeded / full (same-run ratios: median, each run)', `${fmt(100 * median(perRun('seededS', 'fullS')), 1)}%`, `${fmt(100 * median(perRun('seededBytes', 'fullBytes')), 2)}%`, '-', '-', perRun('seededS', 'fullS').map(x => `${fmt(100 * x, 1)}%`).join(' / ')]
    ],
    notes: [`Clock: from add-replica on A to the joiner steady, lacking nothing, with its watermark for A at A's seq. Chunk bytes C received before its add-replica (should be 0): ${runs('preJoinBytesC', 0)}.`,
      `Checked in every run, outside the clock: the joiner's listing equals A's and all ${expected.size} files it serves have the generator's sha256.`]
  })
}

export const dumps: Suite = {
  name: 'dumps',
  description: 'dump and restore MB/s vs a raw file copy; join of a dump-seeded member after 1% change vs a full copy',
  run
}
