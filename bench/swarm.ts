/**
 * swarm (issue 19): in-process swarms (testing/swarm.ts) at each of --nodes (default 10,50,100;
 * --quick 10): a volume on 3 members, 80% of the nodes granted read and reading all of it at
 * once, every byte sha256-checked. Per swarm: start, grant, the single reader of the same run,
 * the stampede (time, aggregate throughput, ratio to the single reader), the busiest holder
 * against a fair share, p50/p99 first byte of on-demand 64 KiB Range reads during the
 * stampede, RSS per node (after start, peak), CPU seconds of the process, teardown.
 * Options: --nodes LIST, --mib N (volume size, default 64; --quick 8), --files N (default 64),
 * --readers N.
 */
import { runSwarm, type SwarmResult } from '../testing/swarm.js'
import { MiB, type Suite, type SuiteContext } from './lib.js'

export function swarmRow (r: SwarmResult): Array<string | number> {
  const s = (ms: number): string => (ms / 1000).toFixed(1)
  return [r.nodes, `${r.readersDone}/${r.readers}`, `${(r.volumeBytes / MiB).toFixed(0)} MiB`, s(r.startMs), s(r.grantMs), r.soloMBps.toFixed(1), s(r.stampedeMs),
    r.aggregateMBps.toFixed(1), r.ratio.toFixed(2), `${r.busiestOverFair.toFixed(2)} (${r.busiest})`, `${r.firstByteMs.p50.toFixed(0)}/${r.firstByteMs.p99.toFixed(0)} (${r.firstByteMs.n})`,
    `${r.rssPerNodeMiB.started.toFixed(1)}/${r.rssPerNodeMiB.peak.toFixed(1)}`, r.cpuSeconds.toFixed(0), s(r.closeMs)]
}

export const SWARM_COLUMNS = ['nodes', 'readers done', 'volume', 'start s', 'grant s', 'single reader MiB/s', 'stampede s', 'aggregate MiB/s', 'ratio', 'busiest / fair', 'first byte p50/p99 ms (n)', 'RSS/node MiB start/peak', 'CPU s', 'close s']

async function run (ctx: SuiteContext): Promise<void> {
  const list = ctx.flag('nodes')
  const counts = typeof list === 'string' ? list.split(',').map(Number) : ctx.pick({ quick: [10], standard: [10, 50, 100], full: [10, 50, 100] })
  const mib = Number(ctx.flag('mib') ?? ctx.pick({ quick: 8, standard: 64, full: 64 }))
  const files = Number(ctx.flag('files') ?? 64)
  const readers = ctx.flag('readers')
  const rows: Array<Array<string | number>> = []
  for (const nodes of counts) {
    const dir = await ctx.tempDir(`swarm-${nodes}`)
    const r = await runSwarm({ nodes, files, fileBytes: Math.round(mib * MiB / files), dir, log: line => { ctx.log(`  [${nodes}] ${line}`) }, ...(typeof readers === 'string' ? { readers: Number(readers) } : {}) })
    rows.push(swarmRow(r))
    ctx.log(`  [${nodes}] served by holder (KiB): ${Object.entries(r.served).sort((a, b) => b[1] - a[1]).slice(0, 8).map(([n, b]) => `${n} ${(b / 1024).toFixed(0)}`).join(', ')}`)
  }
  ctx.table({ title: `swarm: ${mib} MiB on 3 members, 80% of the nodes read it at once (in-process nodes, loopback TCP)`, columns: SWARM_COLUMNS, rows })
}

export const swarm: Suite = { name: 'swarm', description: 'many in-process nodes: readers stampede one volume (issue 19)', run }
