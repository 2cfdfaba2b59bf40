/**
 * Randomized reliability runs: schedules of writes on several members mixed with kill -9 at
 * chosen points, clean stops, restarts, partitions and heals, slow or lossy links, on a fresh
 * topology of process nodes each; at the end every fault is lifted, every node restarted, and
 * once the volume is steady the history checker (history.ts) decides whether anything was lost.
 *
 * The parts: rng.ts (seeded PRNG), chaos-plan.ts (a schedule planned from seed and index),
 * chaos-schedule.ts (running one plan), local-chunks.ts (the stopped-store check),
 * chaos-churn.ts (no member still changing once steady, seqs bounded by the writes),
 * chaos-report.ts (result lines and summary). This module runs many schedules in a row.
 */
import '../core/polyfill.js'
import { planSchedule, describeStep, type PlanOptions } from './chaos-plan.js'
import { runSchedule, type RunOptions } from './chaos-schedule.js'
import { formatResult, replayCommand, type ChaosSummary } from './chaos-report.js'

export { Rng } from './rng.js'
export { planSchedule, contentOf, describeStep, type PlannedOp, type Writer, type KillPoint, type Step, type Plan, type PlanOptions } from './chaos-plan.js'
export { runSchedule, type ScheduleResult, type RunOptions } from './chaos-schedule.js'
export { checkLocalChunks } from './local-chunks.js'
export { checkChurn, churnBound, type ChurnStats } from './chaos-churn.js'
export { formatResult, formatSummary, replayCommand, type ChaosSummary } from './chaos-report.js'

export interface ChaosOptions extends RunOptions, PlanOptions {
  seed: string
  /** Number of schedules (from index `from`, default 0). */
  schedules: number
  from?: number
  /** Stop at the first failing schedule. */
  bail?: boolean
}

/** Runs `schedules` schedules of `seed`, one after the other, logging a line per schedule. */
export async function runChaos (opts: ChaosOptions): Promise<ChaosSummary> {
  const log = opts.log ?? (() => {})
  const started = Date.now()
  const summary: ChaosSummary = {
    seed: opts.seed, schedules: 0, passed: 0, failed: 0, killPoints: 0, killPointsSurvived: 0, partitionSchedules: 0, partitionSchedulesSurvived: 0,
    ackedWrites: 0, conflictCopies: 0, durationMs: 0, failures: [], results: []
  }
  const from = opts.from ?? 0
  for (let i = from; i < from + opts.schedules; i++) {
    const plan = planSchedule(opts.seed, i, opts)
    if (opts.verbose === true) {
      log(`schedule ${plan.id}: ${plan.nodes.length} nodes, plan:`)
      for (const s of plan.steps) log(`  - ${describeStep(s)}`)
    }
    const r = await runSchedule(plan, opts)
    summary.results.push(r)
    summary.schedules++
    summary.killPoints += r.kills
    summary.ackedWrites += r.writes.acked
    summary.conflictCopies += r.stats?.conflictCopies ?? 0
    if (r.partitions > 0) summary.partitionSchedules++
    if (r.ok) {
      summary.passed++
      summary.killPointsSurvived += r.kills
      if (r.partitions > 0) summary.partitionSchedulesSurvived++
    } else {
      summary.failed++
      summary.failures.push({ id: r.id, replay: replayCommand(opts.seed, i), violations: r.violations, dir: r.dir })
    }
    log(formatResult(r))
    if (!r.ok) {
      for (const v of r.violations.slice(0, 10)) log(`  ${v.kind}: ${v.message}`)
      if (r.violations.length > 10) log(`  ... ${r.violations.length - 10} more`)
      log(`  replay: ${replayCommand(opts.seed, i)}`)
      if (r.dir !== undefined) log(`  data dirs and node logs kept in ${r.dir}`)
      if (opts.bail === true) break
    }
  }
  summary.durationMs = Date.now() - started
  return summary
}
