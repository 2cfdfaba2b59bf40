/** What a chaos run reports: a line per schedule, a summary, the command that replays one. */
import type { Violation } from './history.js'
import type { ScheduleResult } from './chaos-schedule.js'

export interface ChaosSummary {
  seed: string
  schedules: number
  passed: number
  failed: number
  killPoints: number
  killPointsSurvived: number
  partitionSchedules: number
  partitionSchedulesSurvived: number
  ackedWrites: number
  conflictCopies: number
  durationMs: number
  failures: Array<{ id: string, replay: string, violations: Violation[], dir?: string }>
  results: ScheduleResult[]
}

export function replayCommand (seed: string, index: number): string {
  return `npm run chaos -- --seed ${seed} --from ${index} --schedules 1 --verbose`
}

export function formatResult (r: ScheduleResult): string {
  const s = r.stats
  const checked = s !== undefined ? ` | ${s.files} files, ${s.conflictCopies} conflict copies; acked puts ${s.ackedPuts}: ${s.present} present, ${s.superseded} superseded, ${s.uncertain} undecided` : ''
  const churn = r.churn !== undefined ? ` | max seq ${r.churn.maxSeq} for ${r.churn.writes} writes` : ''
  return `schedule ${r.id}: ${r.nodes} nodes | faults: ${r.faults.length > 0 ? r.faults.join(', ') : 'none'} | writes acked ${r.writes.acked} (failed ${r.writes.failed}, unknown ${r.writes.unknown}, deletes ${r.writes.deletes})${checked}${churn}` +
    `${r.convergeMs !== undefined ? ` | steady in ${(r.convergeMs / 1000).toFixed(1)}s` : ''} | ${r.ok ? 'OK' : 'FAILED'} in ${(r.durationMs / 1000).toFixed(1)}s`
}

export function formatSummary (s: ChaosSummary): string {
  const lines = [
    `chaos seed ${s.seed}: ${s.schedules} schedules, ${s.passed} passed, ${s.failed} failed in ${(s.durationMs / 1000).toFixed(0)}s`,
    `  kill points survived: ${s.killPointsSurvived} of ${s.killPoints}`,
    `  partition schedules survived: ${s.partitionSchedulesSurvived} of ${s.partitionSchedules}`,
    `  acknowledged writes checked: ${s.ackedWrites}; conflict copies in final trees: ${s.conflictCopies}`
  ]
  for (const f of s.failures) lines.push(`  FAILED ${f.id}: ${f.violations[0]?.message ?? ''}\n    replay: ${f.replay}`)
  return lines.join('\n')
}
