/**
 * Randomized reliability runs: schedules of writes and reads in `active` and `all` volumes on
 * several members (several lanes per member too) mixed with kill -9 and power losses at chosen
 * points, crashes at named points (GC, repack, restore, all-mode prepare/decision), membership
 * changes, snapshots, GC and dumps beside the writes, clean stops, restarts, partitions and
 * heals, slow or lossy links, on a fresh topology of process nodes each; at the end every fault
 * is lifted, every node restarted and made a member again, and once the volumes are steady the
 * history checker (history.ts) decides whether anything was lost.
 *
 * The parts: rng.ts (seeded PRNG), chaos-plan.ts (a schedule planned from seed and index),
 * chaos-schedule.ts (running one plan) with chaos-steps.ts (bursts, side operations, crashes,
 * restores) and chaos-observe.ts (RSS, churn ratios), chaos-churn.ts (no member still changing
 * once steady, seqs bounded by the writes), power-loss.ts, local-chunks.ts (the stopped-store
 * check), chaos-report.ts (result lines and totals). This module runs many schedules in a row.
 */
import '../core/polyfill.js'
import { planSchedule, describeStep, type PlanOptions } from './chaos-plan.js'
import { runSchedule, type RunOptions } from './chaos-schedule.js'
import { addResult, emptySummary, formatResult, replayCommand, type ChaosSummary } from './chaos-report.js'

export { Rng } from './rng.js'
export { planSchedule, contentOf, describeStep, type PlannedOp, type Writer, type KillPoint, type SideOp, type Step, type Plan, type PlanOptions, type Mode } from './chaos-plan.js'
export { runSchedule, DEFAULT_MAX_RSS, type ScheduleResult, type RunOptions } from './chaos-schedule.js'
export { checkLocalChunks } from './local-chunks.js'
export { checkChurn, churnBound, type ChurnStats } from './chaos-churn.js'
export { formatResult, formatSummary, formatRates, replayCommand, type ChaosSummary } from './chaos-report.js'

export interface ChaosOptions extends RunOptions, PlanOptions {
  seed: string
  /** Number of schedules (from index `from`, default 0). */
  schedules: number
  from?: number
  /** Stop at the first failing schedule (schedules already running finish). */
  bail?: boolean
  /** Schedules run at once (default 1), each on its own topology; lines come in the order they finish. */
  parallel?: number
}

/** Runs `schedules` schedules of `seed`, one after the other, logging a line per schedule. */
export async function runChaos (opts: ChaosOptions): Promise<ChaosSummary> {
  const log = opts.log ?? (() => {})
  const started = Date.now()
  const summary = emptySummary(opts.seed)
  const from = opts.from ?? 0
  let next = from
  let stop = false
  const one = async (i: number): Promise<void> => {
    const plan = planSchedule(opts.seed, i, opts)
    if (opts.verbose === true) {
      log(`schedule ${plan.id}: ${plan.nodes.length} nodes, volumes ${plan.volumes.map(v => `${v.name} (${v.mode}, members ${v.members.join(',')})`).join(', ')}, plan:`)
      for (const s of plan.steps) log(`  - ${describeStep(s)}`)
    }
    const r = await runSchedule(plan, opts)
    addResult(summary, r)
    if (!r.ok) summary.failures.push({ id: r.id, replay: replayCommand(opts.seed, i), violations: r.violations, dir: r.dir })
    log(formatResult(r))
    for (const w of r.warnings) log(`  warning: ${w}`)
    if (!r.ok) {
      for (const v of r.violations.slice(0, 10)) log(`  ${v.kind}: ${v.message}`)
      if (r.violations.length > 10) log(`  ... ${r.violations.length - 10} more`)
      log(`  replay: ${replayCommand(opts.seed, i)}`)
      if (r.dir !== undefined) log(`  data dirs and node logs kept in ${r.dir}`)
      if (opts.bail === true) stop = true
    }
  }
  const lane = async (): Promise<void> => {
    while (!stop && next < from + opts.schedules) await one(next++)
  }
  await Promise.all(Array.from({ length: Math.max(1, opts.parallel ?? 1) }, lane))
  summary.results.sort((a, b) => a.index - b.index)
  summary.failures.sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }))
  summary.durationMs = Date.now() - started
  return summary
}
