/**
 * write-modes (issue 6): write latency (p50 / p99) and throughput through the HTTP API of
 * node A, one write at a time, for 4 KiB, 1 MiB and 64 MiB files, into three volumes in the
 * same run: `single` (A alone), `active` (A, B, C; acknowledged once A committed) and `all`
 * (A, B, C; acknowledged once every member stored it: prepare / commit). Three node processes.
 */
import { Readable } from 'node:stream'
import { KiB, MiB, fmt, fmtBytes, mbps, median, now, ratio, type Suite, type SuiteContext } from './lib.js'
import { peakRss, startCluster } from './cluster.js'
import { countedStream } from './data.js'
import type { NodeProcess } from './node-proc.js'

interface Case { size: number, count: number }

function cases (ctx: SuiteContext): Case[] {
  return ctx.pick<Case[]>({
    quick: [{ size: 4 * KiB, count: 40 }, { size: MiB, count: 15 }, { size: 64 * MiB, count: 2 }],
    standard: [{ size: 4 * KiB, count: 100 }, { size: MiB, count: 40 }, { size: 64 * MiB, count: 3 }],
    full: [{ size: 4 * KiB, count: 300 }, { size: MiB, count: 100 }, { size: 64 * MiB, count: 5 }]
  })
}

function pct (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]
}

async function writes (node: NodeProcess, volume: string, c: Case, round: number): Promise<{ lat: number[], s: number }> {
  const lat: number[] = []
  const t0 = now()
  for (let i = 0; i < c.count; i++) {
    const t = now()
    await node.client.put(volume, `w${round}/${c.size}/${i}`, Readable.from(countedStream(round * 100_000 + i, c.size)), { size: c.size })
    lat.push(now() - t)
  }
  return { lat, s: (now() - t0) / 1000 }
}

async function run (ctx: SuiteContext): Promise<void> {
  const { nodes } = await startCluster(ctx, 'modes', 3)
  const [a, b, c] = nodes
  await a.client.createVolume({ name: 'single' })
  await a.client.createVolume({ name: 'active', replicas: [b.peerId, c.peerId], writeMode: 'active' })
  await a.client.createVolume({ name: 'all', replicas: [b.peerId, c.peerId], writeMode: 'all' })
  const modes = ['single', 'active', 'all']
  const rows: Array<Array<string | number>> = []
  const p50 = new Map<string, number>()
  for (const cs of cases(ctx)) {
    // Interleaved by mode, so a noisy moment of the machine hits all three alike.
    const res = new Map<string, { lat: number[], s: number }>()
    for (const m of modes) res.set(m, await writes(a, m, cs, modes.indexOf(m)))
    for (const m of modes) {
      const r = res.get(m)!
      p50.set(`${m}/${cs.size}`, median(r.lat))
      rows.push([`${fmtBytes(cs.size)} x ${cs.count}`, m, fmt(median(r.lat), 1), fmt(pct(r.lat, 99), 1), fmt(mbps(cs.size * cs.count, r.s)), fmt(cs.count / r.s, 1),
        ratio(median(r.lat), median(res.get('active')!.lat))])
    }
  }
  ctx.table({
    title: 'write latency and throughput on A (one write at a time), by write mode; 3 members for active and all',
    columns: ['files', 'mode', 'p50 ms', 'p99 ms', 'MB/s', 'writes/s', 'p50 vs active'],
    rows,
    notes: [`Goal (issue 6): all p50 <= 2x active for 1 MiB files: here ${ratio(p50.get(`all/${MiB}`)!, p50.get(`active/${MiB}`)!)}. Peak RSS A / B / C: ${await peakRss(nodes)} MiB.`]
  })
  for (const n of nodes) await n.stop()
}

export const writeModes: Suite = {
  name: 'write-modes',
  description: 'write latency and throughput: all mode on 3 members vs active vs a single node',
  run
}
