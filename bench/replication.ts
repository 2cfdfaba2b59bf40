/**
 * replication (issue 3): two node processes on loopback, A and B, members of one volume. B is
 * cut off from A (the fault API's block, both ways) while the workload is written on A; the
 * clock starts at the unblock and stops when B has converged: it lists every file, holds every
 * chunk (state steady, nothing lacking; its commits are synced, so converged means durable).
 * Workloads: (a) large files (--full: 8 x 128 MiB) and (b) 16 KiB files (--full: 10,000).
 * Same-run baselines: raw loopback TCP and one libp2p+noise+yamux stream (1 MiB send()s with
 * 'drain'), receivers in child processes. Peak RSS (VmHWM) of each node per phase.
 * --profile runs both nodes under --cpu-prof and prints where their time goes.
 */
import { KiB, MiB, Samples, fmt, fmtBytes, mbps, ratio, resetPeakRss, type Suite, type SuiteContext } from './lib.js'
import { VOLUME, dataSet, type DataSet, monotonicMicros, baselines, fetchedBytes, lastFullSync, peakRss, printProfiles, putFiles, startCluster, waitConverged } from './cluster.js'
import { procMemory, procCpuSeconds } from './lib.js'

export function replicationSizes (ctx: SuiteContext): DataSet {
  return dataSet(ctx, { bigCount: 2, bigSize: 32 * MiB, smallCount: 1000 })
}

const SMALL = 16 * KiB

async function run (ctx: SuiteContext): Promise<void> {
  const sz = replicationSizes(ctx)
  const profile = ctx.flag('profile') === true
  const reps = profile ? 1 : ctx.flags.reps
  const bigBytes = sz.bigCount * sz.bigSize
  const base = await baselines(ctx, Math.min(bigBytes, 256 * MiB), Math.min(reps, 3))
  const s = new Samples()
  for (let r = 0; r < reps; r++) {
    const { nodes: [a, b], profileDirs } = await startCluster(ctx, `repl${r}`, 2, { profile })
    await a.client.createVolume({ name: VOLUME, replicas: [b.peerId] })
    await waitConverged(b, 0)
    await a.client.block([b.peerId])
    await b.client.block([a.peerId])
    // (a) large files
    await putFiles(a, 'big/', sz.bigCount, sz.bigSize, 2)
    await resetPeakRss(a.pid); await resetPeakRss(b.pid)
    const fetched0 = (await fetchedBytes(b)).bytesReceived
    const cpu = async (): Promise<number> => await procCpuSeconds(a.pid) + await procCpuSeconds(b.pid)
    let c0 = await cpu()
    let t0 = performance.now()
    const w0 = monotonicMicros()
    await a.client.unblock(); await b.client.unblock()
    await waitConverged(b, sz.bigCount, { bytes: bigBytes })
    const window = { from: w0, to: monotonicMicros() }
    const bigS = (performance.now() - t0) / 1000
    s.add('bigS', bigS)
    s.add('bigCpu', await cpu() - c0)
    s.add('bigRssA', (await procMemory(a.pid)).peakRss)
    s.add('bigRssB', (await procMemory(b.pid)).peakRss)
    s.add('bigWire', (await fetchedBytes(b)).bytesReceived - fetched0)
    ctx.log(`  rep ${r + 1}: (a) ${sz.bigCount} x ${fmtBytes(sz.bigSize)} in ${fmt(bigS)} s = ${fmt(mbps(bigBytes, bigS))} MB/s, CPU A+B ${fmt(s.all('bigCpu')[r])} s; peak RSS A/B ${await peakRss([a, b])} MiB`)
    // (b) small files
    await a.client.block([b.peerId]); await b.client.block([a.peerId])
    await putFiles(a, 'small/', sz.smallCount, SMALL, 8, 1000)
    await resetPeakRss(a.pid); await resetPeakRss(b.pid)
    c0 = await cpu()
    t0 = performance.now()
    await a.client.unblock(); await b.client.unblock()
    await waitConverged(b, sz.bigCount + sz.smallCount, { pollMs: 100 })
    const smallS = (performance.now() - t0) / 1000
    s.add('smallS', smallS)
    s.add('smallCpu', await cpu() - c0)
    s.add('smallRssA', (await procMemory(a.pid)).peakRss)
    s.add('smallRssB', (await procMemory(b.pid)).peakRss)
    ctx.log(`  rep ${r + 1}: (b) ${sz.smallCount} x 16 KiB in ${fmt(smallS)} s = ${fmt(sz.smallCount / smallS, 0)} files/s, CPU A+B ${fmt(s.all('smallCpu')[r])} s; peak RSS A/B ${await peakRss([a, b])} MiB`)
    await a.stop(); await b.stop()
    if (profile) await printProfiles(ctx, ['A (serving)', 'B (pulling)'], profileDirs, 25, window)
  }
  const bigMBs = mbps(bigBytes, s.med('bigS'))
  lastFullSync.mbs = bigMBs
  lastFullSync.label = `replication (a) ${sz.bigCount} x ${fmtBytes(sz.bigSize)}`
  ctx.table({
    title: `replication A -> B, time to converged and durable on B (median of ${reps})`,
    columns: ['workload', 's', 'MB/s', 'vs TCP', 'vs libp2p', 'CPU s A+B', 'peak RSS A MiB', 'peak RSS B MiB', 'chunk bytes received'],
    rows: [
      [`(a) ${sz.bigCount} x ${fmtBytes(sz.bigSize)}`, fmt(s.med('bigS')), fmt(bigMBs), ratio(bigMBs, base.tcpMBs), ratio(bigMBs, base.libp2pMBs), fmt(s.med('bigCpu')),
        fmt(s.med('bigRssA') / MiB, 0), fmt(s.med('bigRssB') / MiB, 0), fmtBytes(s.med('bigWire'))],
      [`(b) ${sz.smallCount} x 16 KiB`, fmt(s.med('smallS')), fmt(mbps(sz.smallCount * SMALL, s.med('smallS'))), ratio(mbps(sz.smallCount * SMALL, s.med('smallS')), base.tcpMBs),
        ratio(mbps(sz.smallCount * SMALL, s.med('smallS')), base.libp2pMBs), fmt(s.med('smallCpu')), fmt(s.med('smallRssA') / MiB, 0), fmt(s.med('smallRssB') / MiB, 0), '-'],
      ['baseline: raw loopback TCP', '-', fmt(base.tcpMBs), '1.00x', ratio(base.tcpMBs, base.libp2pMBs), '-', '-', '-', '-'],
      ['baseline: libp2p+noise+yamux, 1 stream', '-', fmt(base.libp2pMBs), ratio(base.libp2pMBs, base.tcpMBs), '1.00x', '-', '-', '-', '-']
    ],
    notes: ['Goals (issue 3): (a) >= 350 MB/s; (b) < 5 s; peak RSS < 200 MiB per node. MB/s = 10^6 B/s.',
      'Clock: from lifting the partition (A and B unblock each other) to B listing every file with state steady and nothing lacking; it includes the redial (<= 0.5 s backoff).']
  })
}

export const replication: Suite = {
  name: 'replication',
  description: 'two node processes: time for B to converge on files written on A (large, small), vs TCP and libp2p baselines',
  run
}
