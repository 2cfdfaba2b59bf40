/**
 * The steps of a chaos schedule that do more than call one topology method: bursts of lanes of
 * writes and reads with a kill (or power loss) at a chosen point and side operations beside them
 * (membership changes, snapshots, GC, dumps), crashes at named points, restores of a dump.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { isReplicantError, Codes } from '../core/errors.js'
import { logger } from '../core/log.js'
import type { Topology } from './topology.js'
import type { History, Violation } from './history.js'
import { checkAckedBytes } from './local-chunks.js'
import { contentOf, type Plan, type PlannedOp, type SideOp, type Step } from './chaos-plan.js'

const log = logger('chaos')

/** Counters a schedule keeps as its steps run (ScheduleResult carries them). */
export interface StepCounters {
  kills: number
  powerLosses: number
  /** Crash points passed (the node killed itself there) and missed (killed from outside), per point. */
  crashes: { hit: number, missed: number, byPoint: Record<string, number>, missedByPoint: Record<string, number> }
  /** Restores killed mid-way, as their node showed once restarted: volume absent, or partial (files kept). */
  partialRestores: { absent: number, partial: number, files: number }
  restarts: number
  membership: { attempted: number, done: number }
  side: { snapshots: number, gcs: number, dumps: number, restores: number, failed: number }
  reads: { ok: number, missing: number, failed: number }
  faults: string[]
}

export function newCounters (): StepCounters {
  return {
    kills: 0, powerLosses: 0, crashes: { hit: 0, missed: 0, byPoint: {}, missedByPoint: {} }, partialRestores: { absent: 0, partial: 0, files: 0 }, restarts: 0, membership: { attempted: 0, done: 0 },
    side: { snapshots: 0, gcs: 0, dumps: 0, restores: 0, failed: 0 }, reads: { ok: 0, missing: 0, failed: 0 }, faults: []
  }
}

export interface StepContext {
  topo: Topology
  plan: Plan
  history: History
  dir: string
  counters: StepCounters
  violations: Violation[]
  /** Members per volume as last answered by a node; undefined while a change's outcome is unknown. */
  members: Map<string, Set<string> | undefined>
  /** Removal attempts (any outcome): a member removed after a write no longer has to hold it. */
  removals: Array<{ volume: string, node: string, at: number }>
  vlog: (s: string) => void
  /** When the junk of the crash GCs was written (setup). */
  junkWrittenAt?: number
}

/** GC beside writes collects chunks older than this (the default 10 min would collect nothing in a schedule). */
const GC_YOUNG_SECONDS = 5

export async function killNode (ctx: StepContext, node: string, power: boolean, label: string): Promise<void> {
  if (power) {
    const cut = await ctx.topo.powerLoss(node)
    ctx.counters.powerLosses++
    for (const v of ctx.plan.volumes) {
      const acked = ctx.history.ops(v.name).filter(o => o.node === node && o.status === 'acked')
      ctx.violations.push(...await checkAckedBytes(node, ctx.topo.node(node).dataDir, v.name, acked))
    }
    ctx.counters.faults.push(`power loss ${node}${label} (${cut.bytesCut} B cut)`)
  } else {
    await ctx.topo.kill(node)
    ctx.counters.faults.push(`kill -9 ${node}${label}`)
  }
  ctx.counters.kills++
}

/** The first running node of `via` that is a member of `volume` as far as is known here (any running one if unknown). */
function coordinator (ctx: StepContext, volume: string | undefined, via: string[]): string | undefined {
  const m = volume === undefined ? undefined : ctx.members.get(volume)
  return via.find(n => ctx.topo.node(n).running && (m === undefined || m.has(n))) ?? via.find(n => ctx.topo.node(n).running)
}

async function runOp (ctx: StepContext, node: string, op: PlannedOp): Promise<boolean> {
  const { topo, plan, history } = ctx
  if (op.kind === 'put') { await topo.write(node, op.volume, op.path, contentOf(plan, op)); return true }
  if (op.kind === 'delete') { await topo.remove(node, op.volume, op.path); return true }
  try {
    history.read(op.volume, op.path, node, await topo.read(node, op.volume, op.path))
    ctx.counters.reads.ok++
  } catch (err) {
    if (isReplicantError(err) && err.code === Codes.FILE_NOT_FOUND) { history.read(op.volume, op.path, node, null); ctx.counters.reads.missing++ } else ctx.counters.reads.failed++
  }
  return true
}

export async function runBurst (ctx: StepContext, step: Extract<Step, { t: 'burst' }>): Promise<void> {
  const { topo } = ctx
  const kill = step.kill
  let fire: () => void = () => {}
  const trigger = new Promise<void>(resolve => { fire = resolve })
  if (kill !== undefined && kill.afterAcks === 0) fire()
  let killer: Promise<void> | undefined
  if (kill !== undefined) {
    killer = (async () => {
      await trigger
      if (kill.delayMs > 0) await sleep(kill.delayMs)
      await killNode(ctx, kill.node, kill.power, `@${kill.afterAcks}acks+${kill.delayMs}ms`)
    })()
  }
  const sides = step.side.map(async s => { await sleep(s.delayMs); await runSide(ctx, s) })
  let killAcks = 0
  await Promise.all(step.writers.map(async w => {
    for (const op of w.ops) {
      if (!topo.node(w.node).running) break // killed: the rest of its ops are never sent
      try {
        await runOp(ctx, w.node, op)
        if (kill !== undefined && w.node === kill.node) killAcks++
      } catch (err) {
        // Recorded in the history (failed or unknown); refusals (not a member, all-mode member down) are normal.
        log('%s %s:%s on %s failed: %s', op.kind, op.volume, op.path, w.node, (err as Error).message)
      }
      if (kill !== undefined && killAcks >= kill.afterAcks) fire()
    }
  }))
  await Promise.all(sides)
  if (killer !== undefined) {
    fire() // its writer may have stopped short of the ack count (errors): the kill still happens
    await killer
  }
}

async function runSide (ctx: StepContext, s: SideOp): Promise<void> {
  const via = coordinator(ctx, s.t === 'gc' ? undefined : s.volume, s.via)
  if (via === undefined) return
  const client = ctx.topo.client(via)
  try {
    switch (s.t) {
      case 'member': {
        ctx.counters.membership.attempted++
        if (s.op === 'remove') ctx.removals.push({ volume: s.volume, node: s.node, at: Date.now() })
        const names = s.op === 'add' ? await ctx.topo.addReplica(s.volume, via, s.node) : await ctx.topo.removeReplica(s.volume, via, s.node)
        ctx.members.set(s.volume, new Set(names))
        ctx.counters.membership.done++
        ctx.counters.faults.push(`${s.op}-replica ${s.volume.replace(/^chaos-/, '')} ${s.node} via ${via}`)
        break
      }
      case 'snapshot': await client.createSnapshot(s.volume); ctx.counters.side.snapshots++; break
      case 'gc': await client.gc(GC_YOUNG_SECONDS, { repack: s.repack }); ctx.counters.side.gcs++; break
      case 'dump': {
        const snap = await client.createSnapshot(s.volume)
        let bytes = 0
        await client.dump(s.volume, snap.name, new Writable({ write (chunk: Buffer, _e, cb) { bytes += chunk.byteLength; cb() } }))
        if (bytes === 0) throw new Error('empty dump')
        ctx.counters.side.dumps++
        break
      }
    }
  } catch (err) {
    ctx.counters.side.failed++
    // A membership change whose answer was lost may or may not have happened.
    if (s.t === 'member' && !isReplicantError(err)) ctx.members.set(s.volume, undefined)
    ctx.vlog(`${s.t} via ${via} failed: ${(err as Error).message}`)
  }
}

/**
 * Waits for `node` to exit by itself at `point` while `work` (the operation that passes it) runs.
 * An answer, success or a node's error, means the point was not passed (a node that passes it
 * dies before it can answer): then it is killed from outside at once, counted as missed.
 */
async function awaitCrash (ctx: StepContext, node: string, point: string, work: Promise<unknown>, ms: number): Promise<string> {
  let answer: string | undefined
  const settled = work.then(() => { answer = 'answered'; return answer }, (err: Error) => { const m = err.message; if (isReplicantError(err)) answer = m; return m })
  const deadline = Date.now() + ms
  while (ctx.topo.node(node).running && answer === undefined && Date.now() < deadline) await sleep(20)
  // An answer and the exit can race: a moment more for the exit to be seen.
  if (answer !== undefined && ctx.topo.node(node).running) await sleep(50)
  const hit = !ctx.topo.node(node).running
  const miss = ctx.counters.crashes.missedByPoint
  if (!hit) {
    ctx.counters.crashes.missed++
    miss[point] = (miss[point] ?? 0) + 1
    await ctx.topo.kill(node)
    ctx.counters.faults.push(`kill -9 ${node} (crash point ${point} not reached${answer !== undefined ? `: ${answer}` : ''})`)
  } else {
    ctx.counters.crashes.hit++
    ctx.counters.crashes.byPoint[point] = (ctx.counters.crashes.byPoint[point] ?? 0) + 1
    ctx.counters.faults.push(`crash ${node} at ${point}`)
  }
  ctx.counters.kills++
  return await settled
}

/** Chunks of the junk written at setup are older than this when a crash GC runs with it as its young window. */
export const CRASH_GC_YOUNG_SECONDS = 2

export async function runCrash (ctx: StepContext, step: Extract<Step, { t: 'crash' }>): Promise<void> {
  const { topo } = ctx
  if (!topo.node(step.node).running) return
  const op = step.op
  if (op !== undefined) await awaitLinked(ctx, step.node, op.volume)
  if (step.junk !== undefined) await dropJunk(ctx, step.node, step.junk)
  await topo.crashAt(step.node, step.point)
  const work = op !== undefined
    ? topo.write(step.node, op.volume, op.path, contentOf(ctx.plan, op))
    : topo.client(step.node).gc(CRASH_GC_YOUNG_SECONDS, { repack: true })
  ctx.vlog(`crash trigger: ${await awaitCrash(ctx, step.node, step.point, work, 8_000)}`)
}

/** Deletes the doomed junk files and waits until their chunks are past the crash GC's young window. */
async function dropJunk (ctx: StepContext, node: string, index: number): Promise<void> {
  const j = ctx.plan.junk[index]
  const client = ctx.topo.client(node)
  for (const f of j.doomed) await client.remove(j.volume, f.path).catch((err: Error) => { ctx.vlog(`junk ${f.path}: ${err.message}`) })
  const age = Date.now() - (ctx.junkWrittenAt ?? 0)
  if (age < CRASH_GC_YOUNG_SECONDS * 1000 + 300) await sleep(CRASH_GC_YOUNG_SECONDS * 1000 + 300 - age)
}

/** Waits (bounded) until `node` is connected to every other member of `volume`: an all-mode write then reaches prepare. */
async function awaitLinked (ctx: StepContext, node: string, volume: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    const info = await ctx.topo.client(node).volumeInfo(volume).catch(() => undefined)
    if (info !== undefined && info.memberStates.every(m => m.self || m.connected)) return
    await sleep(100)
  }
  ctx.vlog(`${node}: not connected to every member of ${volume} after 10 s`)
}

type FileKey = Array<{ path: string, size: number, version: Record<string, number> }>
const treeKey = (fs: FileKey): string[] => fs.map(f => `${f.path} ${f.size} ${JSON.stringify(f.version)}`).sort()

/** The solo volume's dump (a snapshot of it, taken now on its node) restored on `step.node`. */
export async function runRestore (ctx: StepContext, step: Extract<Step, { t: 'restore' }>): Promise<void> {
  const { topo, plan } = ctx
  const src = plan.solo.node
  if (!topo.node(src).running || !topo.node(step.node).running) return
  const snap = await topo.client(src).createSnapshot(plan.solo.name)
  const file = join(ctx.dir, `solo-${ctx.counters.side.restores}-${step.node}.dump`)
  const out = createWriteStream(file)
  await topo.client(src).dump(plan.solo.name, snap.name, out)
  await new Promise<void>((resolve, reject) => { if (out.closed) resolve(); else { out.once('close', resolve); out.once('error', reject) } })
  const want = treeKey((await topo.client(src).list(plan.solo.name, undefined, { snapshot: snap.name })).files)
  const restore = async (): Promise<void> => {
    await topo.client(step.node).restore(createReadStream(file), (await stat(file)).size)
    ctx.counters.side.restores++
    // The restored tree is the snapshot's: same paths, sizes and versions.
    const got = treeKey(await topo.list(step.node, plan.solo.name))
    if (want.join('\n') !== got.join('\n')) ctx.violations.push({ kind: 'IDENTICAL', message: `restore of ${plan.solo.name} on ${step.node} differs from snapshot ${snap.name} on ${src}:\n${got.join('\n')}\nvs\n${want.join('\n')}` })
  }
  if (!step.crash) { await restore(); return }
  await topo.crashAt(step.node, 'restore-batch')
  ctx.vlog(`restore under crash: ${await awaitCrash(ctx, step.node, 'restore-batch', topo.client(step.node).restore(createReadStream(file), (await stat(file)).size), 8_000)}`)
  await topo.restart(step.node)
  ctx.counters.restarts++
  await checkPartialRestore(ctx, step.node, want)
  await restore()
}

/**
 * What a restore killed mid-way leaves, once its node is back: no volume, or one whose every
 * file is a file of the snapshot (same path, size, version and readable bytes: a prefix of the
 * restore, nothing half-written). The caller then restores the same dump again over it, which
 * must give the whole snapshot (replication/dump.ts starts an interrupted restore over).
 */
async function checkPartialRestore (ctx: StepContext, node: string, want: string[]): Promise<void> {
  const { topo, plan } = ctx
  const vol = plan.solo.name
  const files = await topo.list(node, vol).catch((err: unknown) => {
    if (isReplicantError(err) && err.code === Codes.VOLUME_NOT_FOUND) return undefined
    throw err
  })
  if (files === undefined) { ctx.counters.partialRestores.absent++; return }
  const snapshot = new Set(want)
  const bytes = new Map(plan.solo.files.map(f => [f.path, f]))
  for (const f of files) {
    const key = treeKey([f])[0]
    const planned = bytes.get(f.path)
    if (!snapshot.has(key) || planned === undefined) {
      ctx.violations.push({ kind: 'PARTIAL_RESTORE', message: `after a restore of ${vol} killed mid-way, ${node} lists ${key}, which is not in the snapshot` })
      continue
    }
    const got = await topo.read(node, vol, f.path).catch((err: Error) => Buffer.from(`unreadable: ${err.message}`))
    if (!got.equals(contentOf(plan, planned))) ctx.violations.push({ kind: 'PARTIAL_RESTORE', message: `after a restore of ${vol} killed mid-way, ${node} reads ${f.path} (${got.byteLength} B) with bytes the snapshot does not hold` })
  }
  ctx.counters.partialRestores.partial++
  ctx.counters.partialRestores.files += files.length
}
