/** What a chaos run reports: a line per schedule, a summary with the run's totals, the command that replays one. */
import type { Violation } from './history.js'
import type { ScheduleResult } from './chaos-schedule.js'

export interface ChaosSummary {
  seed: string
  schedules: number
  passed: number
  failed: number
  killPoints: number
  killPointsSurvived: number
  /** Schedules with a partition or a slow/lossy link. */
  partitionSchedules: number
  partitionSchedulesSurvived: number
  powerLosses: number
  crashPoints: { hit: number, missed: number, byPoint: Record<string, number>, missedByPoint: Record<string, number> }
  /** Restores killed mid-way: what their node held once back (checked, then restored again over it). */
  partialRestores: { absent: number, partial: number, files: number }
  restarts: number
  /** Generations found with two configurations at the end (failures: SPLIT_GENERATION), resolved there so the rest could be checked. */
  configSplits: number
  ackedWrites: number
  ackedByMode: { active: number, all: number }
  /** Schedules per write-mode mix ('active', 'all', 'active+all'). */
  modeMix: Record<string, number>
  membershipChanges: { attempted: number, done: number }
  side: { snapshots: number, gcs: number, dumps: number, restores: number }
  reads: number
  conflictCopies: number
  /** Max RSS per node name over the run (bytes). */
  maxRss: Record<string, number>
  /** Highest local-seq-per-acked-write ratio seen, and how many members went past the warning ratio. */
  churn: { maxRatio: number, warnings: number }
  durationMs: number
  failures: Array<{ id: string, replay: string, violations: Violation[], dir?: string }>
  results: ScheduleResult[]
}

export function emptySummary (seed: string): ChaosSummary {
  return {
    seed, schedules: 0, passed: 0, failed: 0, killPoints: 0, killPointsSurvived: 0, partitionSchedules: 0, partitionSchedulesSurvived: 0, powerLosses: 0,
    crashPoints: { hit: 0, missed: 0, byPoint: {}, missedByPoint: {} }, partialRestores: { absent: 0, partial: 0, files: 0 }, restarts: 0, configSplits: 0, ackedWrites: 0, ackedByMode: { active: 0, all: 0 }, modeMix: {}, membershipChanges: { attempted: 0, done: 0 },
    side: { snapshots: 0, gcs: 0, dumps: 0, restores: 0 }, reads: 0, conflictCopies: 0, maxRss: {}, churn: { maxRatio: 0, warnings: 0 }, durationMs: 0, failures: [], results: []
  }
}

/** Adds one schedule's result to the run's totals. */
export function addResult (s: ChaosSummary, r: ScheduleResult): void {
  const c = r.counters
  s.results.push(r)
  s.schedules++
  s.killPoints += r.kills
  s.powerLosses += r.powerLosses
  s.crashPoints.hit += c.crashes.hit
  s.crashPoints.missed += c.crashes.missed
  for (const [p, n] of Object.entries(c.crashes.byPoint)) s.crashPoints.byPoint[p] = (s.crashPoints.byPoint[p] ?? 0) + n
  for (const [p, n] of Object.entries(c.crashes.missedByPoint)) s.crashPoints.missedByPoint[p] = (s.crashPoints.missedByPoint[p] ?? 0) + n
  for (const k of ['absent', 'partial', 'files'] as const) s.partialRestores[k] += c.partialRestores[k]
  s.restarts += r.restarts
  s.configSplits += r.configSplits.count
  s.ackedWrites += r.writes.acked
  s.ackedByMode.active += r.writes.ackedByMode.active
  s.ackedByMode.all += r.writes.ackedByMode.all
  const mix = [...r.modes].sort().join('+')
  s.modeMix[mix] = (s.modeMix[mix] ?? 0) + 1
  s.membershipChanges.attempted += c.membership.attempted
  s.membershipChanges.done += c.membership.done
  for (const k of ['snapshots', 'gcs', 'dumps', 'restores'] as const) s.side[k] += c.side[k]
  s.reads += c.reads.ok + c.reads.missing
  s.conflictCopies += r.stats?.conflictCopies ?? 0
  for (const [n, b] of Object.entries(r.maxRss)) s.maxRss[n] = Math.max(s.maxRss[n] ?? 0, b)
  for (const ch of r.churn) s.churn.maxRatio = Math.max(s.churn.maxRatio, ch.ratio)
  s.churn.warnings += r.warnings.filter(w => w.startsWith('churn')).length
  const shaken = r.partitions > 0 || r.links > 0
  if (shaken) s.partitionSchedules++
  if (r.ok) {
    s.passed++
    s.killPointsSurvived += r.kills
    if (shaken) s.partitionSchedulesSurvived++
  } else {
    s.failed++
  }
}

export function replayCommand (seed: string, index: number): string {
  return `npm run chaos -- --seed ${seed} --only ${index} --verbose`
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`

export function formatResult (r: ScheduleResult): string {
  const s = r.stats
  const checked = s !== undefined ? ` | ${s.files} files, ${s.conflictCopies} conflict copies; acked puts ${s.ackedPuts}: ${s.present} present, ${s.superseded} superseded, ${s.uncertain} undecided` : ''
  const c = r.counters
  const rss = Object.entries(r.maxRss).map(([n, b]) => `${n} ${mib(b)}`).join(', ')
  const churn = r.churn.length > 0 ? ` | churn max ${Math.max(...r.churn.map(x => x.ratio)).toFixed(1)} seq/write` : ''
  return `schedule ${r.id}: ${r.nodes} nodes, ${r.modes.join('+')} | kill points ${r.kills} (crash points hit ${c.crashes.hit}, missed ${c.crashes.missed}) | faults: ${r.faults.length > 0 ? r.faults.join(', ') : 'none'} | writes acked ${r.writes.acked} (active ${r.writes.ackedByMode.active}, all ${r.writes.ackedByMode.all}; failed ${r.writes.failed}, unknown ${r.writes.unknown}, deletes ${r.writes.deletes}), reads ${c.reads.ok + c.reads.missing}` +
    ` | membership ${c.membership.done}/${c.membership.attempted}, snapshots ${c.side.snapshots}, gc ${c.side.gcs}, dumps ${c.side.dumps}, restores ${c.side.restores}${checked}` +
    `${r.convergeMs !== undefined ? ` | steady in ${(r.convergeMs / 1000).toFixed(1)}s` : ''} | max RSS ${rss}${churn} | ${r.ok ? 'OK' : 'FAILED'} in ${(r.durationMs / 1000).toFixed(1)}s`
}

/** Hit and missed per crash point: `gc-sweep 5/6` is 5 hits of 6 tries. */
function crashTable (c: ChaosSummary['crashPoints']): string {
  const points = [...new Set([...Object.keys(c.byPoint), ...Object.keys(c.missedByPoint)])].sort()
  return points.map(p => `${p} ${c.byPoint[p] ?? 0}/${(c.byPoint[p] ?? 0) + (c.missedByPoint[p] ?? 0)}`).join(', ') || 'none'
}

/** Kill points and partition/link schedules per minute of this run, and what 1,000 and 200 of them would take at that pace. */
export function formatRates (s: ChaosSummary): string {
  const min = s.durationMs / 60_000
  if (min <= 0) return '  rates: none (no time elapsed)'
  const kpm = s.killPoints / min
  const ppm = s.partitionSchedules / min
  const need = Math.max(kpm > 0 ? 1000 / kpm : Infinity, ppm > 0 ? 200 / ppm : Infinity)
  return `  rates: ${kpm.toFixed(1)} kill points/min, ${ppm.toFixed(2)} partition/link schedules/min, ${(s.killPoints / Math.max(1, s.schedules)).toFixed(1)} kill points per schedule; ` +
    `1,000 kill points and 200 partition/link schedules at this pace: ${Number.isFinite(need) ? `${need.toFixed(0)} min` : 'never'}`
}

export function formatSummary (s: ChaosSummary): string {
  const perSchedule = s.schedules > 0 ? s.durationMs / s.schedules : 0
  const lines = [
    `chaos seed ${s.seed}: ${s.schedules} schedules, ${s.passed} passed, ${s.failed} failed in ${(s.durationMs / 1000).toFixed(0)}s (${(perSchedule / 1000).toFixed(1)} s per schedule)`,
    `  write modes: ${Object.entries(s.modeMix).map(([m, n]) => `${m} ${n}`).join(', ')}`,
    `  kill points survived: ${s.killPointsSurvived} of ${s.killPoints} (${s.powerLosses} power losses; crash points hit ${s.crashPoints.hit}, missed ${s.crashPoints.missed}; hit/tried per point: ${crashTable(s.crashPoints)}); restarts ${s.restarts}`,
    `  restores killed mid-way: ${s.partialRestores.absent + s.partialRestores.partial} (volume absent after restart ${s.partialRestores.absent}, partial ${s.partialRestores.partial} with ${s.partialRestores.files} files, each a file of the snapshot; each restored again over what was left)`,
    `  partition/link schedules survived: ${s.partitionSchedulesSurvived} of ${s.partitionSchedules}`,
    `  acknowledged writes checked: ${s.ackedWrites} (active ${s.ackedByMode.active}, all ${s.ackedByMode.all}); reads checked ${s.reads}; conflict copies in final trees: ${s.conflictCopies}`,
    `  membership changes: ${s.membershipChanges.done} done of ${s.membershipChanges.attempted} attempted; split generations found at the end (failures) ${s.configSplits}; snapshots ${s.side.snapshots}, GCs ${s.side.gcs}, dumps ${s.side.dumps}, restores ${s.side.restores}`,
    `  max RSS per node: ${Object.entries(s.maxRss).sort().map(([n, b]) => `${n} ${mib(b)}`).join(', ')}`,
    `  churn: max ${s.churn.maxRatio.toFixed(1)} local sequence numbers per acknowledged write; ${s.churn.warnings} member(s) past the warning ratio`
  ]
  lines.push(formatRates(s))
  for (const f of s.failures) lines.push(`  FAILED ${f.id}: ${f.violations[0]?.message ?? ''}\n    replay: ${f.replay}`)
  return lines.join('\n')
}
