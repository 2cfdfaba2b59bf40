/**
 * Named points where a node started for testing kills itself (SIGKILL, as a power cut or an
 * OOM kill would), so a chaos run can land a crash inside an operation that is too short to hit
 * from outside: a GC sweep, a repack, a restore, an all-mode write between prepare and commit.
 *
 * Nothing is armed unless a testing node arms it (POST /v1/faults/crash, or
 * REPLICANT_CRASH_AT=point[:skip]); unarmed, a point costs one map lookup. The registry is per
 * process: an in-process topology node must not arm it (it would kill the test runner).
 */

/** Every point, where it is, and what a crash there must not break. */
export const CRASH_POINTS = {
  /** Group commit: the chunk store fsynced for a group, its level batch not written. */
  'commit-synced': 'inside a group commit, before its batch is written',
  /** Group commit: the group's batch written (durable), no caller answered yet. */
  'commit-written': 'inside a group commit, after its batch, before the answers',
  /** GC: after the first batch of unreferenced chunks was deleted, before the rest. */
  'gc-sweep': 'inside a GC sweep',
  /** Repack: the live chunks copied and synced, their locations not switched yet. */
  'repack-copied': 'inside a repack, after the copy, before the switch',
  /** Repack: locations switched, the old packs not unlinked yet. */
  'repack-switched': 'inside a repack, after the switch, before the unlink',
  /** Restore: after a batch of records was committed, before the rest. */
  'restore-batch': 'inside a restore, between two batches',
  /** All-mode coordinator: every member prepared, nothing decided. */
  'all-prepared': 'inside an all-mode write, between prepare and commit',
  /** All-mode coordinator: its commit recorded, the members not told yet. */
  'all-decided': 'inside an all-mode write, after the decision, before the members hear it'
} as const

export type CrashPoint = keyof typeof CRASH_POINTS

/** Passes left before each armed point kills the process (0: the next pass). */
const armed = new Map<CrashPoint, number>()

export function isCrashPoint (s: string): s is CrashPoint {
  return Object.prototype.hasOwnProperty.call(CRASH_POINTS, s)
}

/** Arms `point`: the process kills itself at its `skip + 1`-th pass from now. */
export function armCrash (point: CrashPoint, skip = 0): void {
  armed.set(point, skip)
}

export function disarmCrashes (): void {
  armed.clear()
}

/** Armed points and the passes each still lets through. */
export function armedCrashes (): Record<string, number> {
  return Object.fromEntries([...armed].sort(([a], [b]) => a.localeCompare(b)))
}

/** Called at each named point: kills this process if the point is armed and its turn has come. */
export function crashPoint (point: CrashPoint): void {
  const left = armed.get(point)
  if (left === undefined) return
  if (left > 0) { armed.set(point, left - 1); return }
  process.kill(process.pid, 'SIGKILL')
}

/** Arms what REPLICANT_CRASH_AT names (`point[:skip],...`); unknown names are an error. */
export function armFromEnv (spec: string | undefined): void {
  for (const part of (spec ?? '').split(',').map(s => s.trim()).filter(s => s.length > 0)) {
    const [name, skip] = part.split(':')
    if (!isCrashPoint(name)) throw new RangeError(`REPLICANT_CRASH_AT: unknown crash point '${name}' (known: ${Object.keys(CRASH_POINTS).join(', ')})`)
    armCrash(name, skip === undefined ? 0 : Number(skip))
  }
}
