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
  crashes: { hit: number, missed: number, byPoint: Record<string, number> }
  membership: { attempted: number, done: number }
  side: { snapshots: number, gcs: number, dumps: number, restores: number, failed: number }
  reads: { ok: number, missing: number, failed: number }
  faults: string[]
}

export function newCounters (): StepCounters {
  return {
    kills: 0, powerLosses: 0, crashes: { hit: 0, missed: 0, byPoint: {} }, membership: { attempted: 0, done: 0 },
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

/** Waits up to `ms` for `node` to exit by itself; kills it if it did not (the point was never passed). */
async function awaitCrash (ctx: StepContext, node: string, point: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (ctx.topo.node(node).running && Date.now() < deadline) await sleep(20)
  if (ctx.topo.node(node).running) {
    ctx.counters.crashes.missed++
    await ctx.topo.kill(node)
    ctx.counters.faults.push(`kill -9 ${node} (crash point ${point} not reached)`)
  } else {
    ctx.counters.crashes.hit++
    ctx.counters.crashes.byPoint[point] = (ctx.counters.crashes.byPoint[point] ?? 0) + 1
    ctx.counters.faults.push(`crash ${node} at ${point}`)
  }
  ctx.counters.kills++
}

export async function runCrash (ctx: StepContext, step: Extract<Step, { t: 'crash' }>): Promise<void> {
  const { topo } = ctx
  if (!topo.node(step.node).running) return
  await topo.crashAt(step.node, step.point)
  const op = step.op
  const work = op !== undefined
    ? topo.write(step.node, op.volume, op.path, contentOf(ctx.plan, op))
    : topo.client(step.node).gc(GC_YOUNG_SECONDS, { repack: true })
  const settled = work.then(() => 'answered', (err: Error) => err.message)
  await awaitCrash(ctx, step.node, step.point, 8_000)
  ctx.vlog(`crash trigger: ${await settled}`)
}

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
  if (step.crash) await topo.crashAt(step.node, 'restore-batch')
  const work = topo.client(step.node).restore(createReadStream(file), (await stat(file)).size)
  if (step.crash) {
    const settled = work.then(() => 'answered', (err: Error) => err.message)
    await awaitCrash(ctx, step.node, 'restore-batch', 8_000)
    ctx.vlog(`restore under crash: ${await settled}`)
    return
  }
  await work
  ctx.counters.side.restores++
  // The restored tree is the snapshot's: same paths, sizes and versions.
  const key = (fs: Array<{ path: string, size: number, version: Record<string, number> }>): string => fs.map(f => `${f.path} ${f.size} ${JSON.stringify(f.version)}`).sort().join('\n')
  const want = key((await topo.client(src).list(plan.solo.name, undefined, { snapshot: snap.name })).files)
  const got = key(await topo.list(step.node, plan.solo.name))
  if (want !== got) ctx.violations.push({ kind: 'IDENTICAL', message: `restore of ${plan.solo.name} on ${step.node} differs from snapshot ${snap.name} on ${src}:\n${got}\nvs\n${want}` })
}

