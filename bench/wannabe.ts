/**
 * wannabe (issue 4): a volume of large and small files on A (--full: 8 x 128 MiB + 10,000 x
 * 16 KiB, about 1.2 GiB); B, connected but no member, is added with add-replica. Measured:
 * - add-replica -> first read served by B (a GET of a small file returning its bytes);
 * - first-byte latency (request sent -> first body byte) of reads of files B does not hold
 *   yet while its background copy runs: small files in random order, and 64 KiB Range reads
 *   at random offsets of the large files, one at a time; p50 / p99;
 * - add-replica -> B steady (every chunk held), against the same run's full sync (replication
 *   suite, if it ran) and the libp2p single-stream baseline.
 */
import { Writable } from 'node:stream'
import { KiB, MiB, fmt, fmtBytes, mbps, median, now, procCpuSeconds, ratio, shuffled, type Suite, type SuiteContext } from './lib.js'
import { VOLUME, dataSet, type DataSet, baselines, fetchedBytes, lastFullSync, monotonicMicros, peakRss, printProfiles, putFiles, startCluster, waitConverged } from './cluster.js'
import type { NodeProcess } from './node-proc.js'

function sizes (ctx: SuiteContext): DataSet & { reads: number } {
  return { ...dataSet(ctx, { bigCount: 2, bigSize: 32 * MiB, smallCount: 500 }), reads: ctx.pick({ quick: 50, standard: 100, full: 150 }) }
}

const SMALL = 16 * KiB

function pct (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]
}

/** ms from sending the request to the first body byte; the rest of the body is discarded. */
async function firstByte (node: NodeProcess, path: string, range?: string): Promise<number> {
  const t0 = now()
  const res = await node.client.open(VOLUME, path, range !== undefined ? { range } : {})
  await new Promise<void>((resolve, reject) => {
    res.once('data', () => resolve())
    res.once('error', reject)
    res.once('end', () => resolve())
  })
  const ms = now() - t0
  res.destroy()
  return ms
}

async function run (ctx: SuiteContext): Promise<void> {
  const sz = sizes(ctx)
  // --reads 0 measures the copy alone (no reader for it to yield to); --profile: both nodes under --cpu-prof.
  const readsFlag = ctx.flag('reads')
  if (typeof readsFlag === 'string') sz.reads = Number(readsFlag)
  const profile = ctx.flag('profile') === true
  const total = sz.bigCount * sz.bigSize + sz.smallCount * SMALL
  const base = await baselines(ctx, 256 * MiB, 1)
  const { nodes: [a, b], profileDirs } = await startCluster(ctx, 'wannabe', 2, { profile })
  await a.client.createVolume({ name: VOLUME })
  await putFiles(a, 'big/', sz.bigCount, sz.bigSize, 2)
  await putFiles(a, 'small/', sz.smallCount, SMALL, 8, 1000)
  ctx.log(`  volume on A: ${sz.bigCount} x ${fmtBytes(sz.bigSize)} + ${sz.smallCount} x 16 KiB = ${fmtBytes(total)}`)

  const cpu = async (): Promise<number> => await procCpuSeconds(a.pid) + await procCpuSeconds(b.pid)
  const c0 = await cpu()
  const w0 = monotonicMicros()
  const t0 = now()
  await a.client.addReplica(VOLUME, b.peerId)
  // First read: the first small file, retried until B serves it.
  let firstRead = NaN
  while (now() - t0 < 60_000) {
    try {
      await b.client.get(VOLUME, 'small/0', new Writable({ write (_c, _e, cb) { cb() } }))
      firstRead = (now() - t0) / 1000
      break
    } catch { /* not readable yet: try again */ }
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  // The index arrives page by page: the reads below need every record (not the chunks).
  let indexS = NaN
  while (now() - t0 < 300_000) {
    const info = await b.client.volumeInfo(VOLUME).catch(() => undefined)
    if (info?.files === sz.bigCount + sz.smallCount) { indexS = (now() - t0) / 1000; break }
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  const od0 = (await b.client.status()).fetched?.onDemand?.reads ?? 0
  // First-byte latency while the copy runs: the copy walks big/ then small/ in order, so the
  // small files from the end and random places of the big files are not held yet.
  const smallLat: number[] = []
  const bigLat: number[] = []
  const smallOrder = shuffled(Array.from({ length: sz.smallCount }, (_, i) => i).slice(Math.floor(sz.smallCount / 2)), 42)
  const chunksPerBig = sz.bigSize / (64 * KiB)
  const offsets = shuffled(Array.from({ length: sz.reads }, (_, i) => i), 7).map(i => ({
    file: i % sz.bigCount, chunk: (i * 7919) % chunksPerBig
  }))
  let steadyDuringReads = false
  for (let i = 0; i < sz.reads; i++) {
    smallLat.push(await firstByte(b, `small/${smallOrder[i % smallOrder.length]}`))
    const o = offsets[i]
    const start = o.chunk * 64 * KiB
    bigLat.push(await firstByte(b, `big/${o.file}`, `bytes=${start}-${start + 64 * KiB - 1}`))
  }
  const readsEnd = (now() - t0) / 1000
  const info = await b.client.volumeInfo(VOLUME)
  if (info.state === 'steady') steadyDuringReads = true
  const od = ((await b.client.status()).fetched?.onDemand?.reads ?? 0) - od0
  await waitConverged(b, sz.bigCount + sz.smallCount, { timeoutMs: 1_800_000, pollMs: 250 })
  const steadyS = (now() - t0) / 1000
  const window = { from: w0, to: monotonicMicros() }
  const cpuS = await cpu() - c0
  const fetched = await fetchedBytes(b)
  const rss = await peakRss([a, b])
  const steadyMBs = mbps(total, steadyS)
  ctx.table({
    title: `wannabe: B added to a ${fmtBytes(total)} volume on A`,
    columns: ['measure', 'value', 'goal'],
    rows: [
      ['add-replica -> first read served (s)', fmt(firstRead, 3), '<= 1 s'],
      ['add-replica -> whole index listed on B (s)', fmt(indexS, 3), '-'],
      [`first byte, not-yet-held small file, p50 / p99 (ms, ${smallLat.length} reads)`, `${fmt(median(smallLat), 1)} / ${fmt(pct(smallLat, 99), 1)}`, '<= 10 / <= 50'],
      [`first byte, 64 KiB Range of a large file, p50 / p99 (ms, ${bigLat.length} reads)`, `${fmt(median(bigLat), 1)} / ${fmt(pct(bigLat, 99), 1)}`, '<= 10 / <= 50'],
      ['chunks fetched on demand during the reads', String(od), `(reads done ${fmt(readsEnd)} s after add-replica${steadyDuringReads ? '; B was steady by then: the copy outran the reads' : ', B still in copy'})`],
      ['add-replica -> steady (s)', fmt(steadyS), '-'],
      ['copy rate (MB/s)', fmt(steadyMBs), '-'],
      ['CPU s A+B, add-replica -> steady', fmt(cpuS), '-'],
      ['vs same-run full sync (replication suite)', lastFullSync.mbs !== undefined ? `${ratio(steadyMBs, lastFullSync.mbs)} of ${fmt(lastFullSync.mbs)} MB/s` : '(replication suite not run)', '-'],
      ['vs libp2p one-stream baseline', `${ratio(steadyMBs, base.libp2pMBs)} of ${fmt(base.libp2pMBs)} MB/s`, '-'],
      ['chunk bytes B received', fmtBytes(fetched.bytesReceived), '-'],
      ['peak RSS A / B (MiB)', rss, '< 200']
    ]
  })
  await a.stop(); await b.stop()
  if (profile) await printProfiles(ctx, ['A (serving)', 'B (copying)'], profileDirs, 25, window)
}

export const wannabe: Suite = {
  name: 'wannabe',
  description: 'add-replica to a volume with data: first read, first-byte latency during the copy, time to steady',
  run
}
