/**
 * Runs one chaos plan on a fresh topology of process nodes: its bursts and faults in order,
 * then every fault lifted and every node restarted; once the volume is steady the history
 * checker (history.ts) decides whether anything was lost. What cannot be replayed is timing:
 * how far replication got before a kill or partition, and which in-flight write a kill
 * lands on, depend on the machine's load.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Topology } from './topology.js'
import { History, type CheckStats, type TreeEntry, type Violation } from './history.js'
import { checkLocalChunks } from './local-chunks.js'
import { checkChurn, type ChurnStats } from './chaos-churn.js'
import { contentOf, describeStep, type Plan, type Step } from './chaos-plan.js'
import { logger } from '../core/log.js'

const log = logger('chaos')

export interface ScheduleResult {
  id: string
  index: number
  nodes: number
  ok: boolean
  /** Faults in the order applied: "kill n2@1+12ms", "partition [n1][n2,n3]", ... */
  faults: string[]
  kills: number
  partitions: number
  restarts: number
  stops: number
  writes: { acked: number, failed: number, unknown: number, deletes: number }
  stats?: CheckStats
  /** Each member's seq and local changes by cause once steady (chaos-churn.ts). */
  churn?: ChurnStats
  violations: Violation[]
  convergeMs?: number
  durationMs: number
  /** Kept for a failed schedule: data dirs and node logs. */
  dir?: string
}

export interface RunOptions {
  /** Where schedule dirs go (default: the OS temp dir). */
  baseDir?: string
  /** Give up waiting for the steady state after this long (a failure). Default 120 s. */
  convergeTimeoutMs?: number
  /** Keep the dirs of failed schedules (default true). */
  keepFailed?: boolean
  log?: (line: string) => void
  verbose?: boolean
  bin?: string
}

/** Runs one planned schedule on a fresh topology of process nodes. */
export async function runSchedule (plan: Plan, opts: RunOptions = {}): Promise<ScheduleResult> {
  const started = Date.now()
  const log = opts.log ?? (() => {})
  const vlog = (s: string): void => { if (opts.verbose === true) log(`  [${((Date.now() - started) / 1000).toFixed(1)}s] ${s}`) }
  const history = new History()
  const result: ScheduleResult = {
    id: plan.id, index: plan.index, nodes: plan.nodes.length, ok: false, faults: [], kills: 0, partitions: 0, restarts: 0, stops: 0,
    writes: { acked: 0, failed: 0, unknown: 0, deletes: 0 }, violations: [], durationMs: 0
  }
  const dir = await mkdtemp(join(opts.baseDir ?? tmpdir(), `replicant-chaos-${plan.seed.replace(/[^a-zA-Z0-9_-]/g, '_')}-${plan.index}-`))
  let topo: Topology | undefined
  const durability = async (node: string): Promise<void> => {
    // The node's own state only moves forward: what it acknowledged before it went down is still there.
    const tree: TreeEntry[] = (await topo!.list(node, plan.volume)).map(f => ({ path: f.path, size: f.size, version: f.version, sha256: '' }))
    result.violations.push(...history.checkNodeDurability(plan.volume, node, tree))
  }
  try {
    topo = await Topology.start({ nodes: plan.nodes, dir, keepDir: true, history, bin: opts.bin, onEvent: e => vlog(`${e.kind}${e.node !== undefined ? ` ${e.node}` : ''}${e.detail !== undefined ? ` ${e.detail}` : ''}`) })
    await topo.createVolume(plan.volume, { chunkSize: plan.chunkSize, writeMode: 'active' }, { timeoutMs: 60_000 })
    for (const step of plan.steps) {
      vlog(`step: ${describeStep(step)}`)
      switch (step.t) {
        case 'burst': await runBurst(topo, plan, step, result); break
        case 'partition':
          await topo.partition(...step.groups)
          result.partitions++
          result.faults.push(describeStep(step))
          break
        case 'heal': await topo.heal(); result.faults.push('heal'); break
        case 'restart':
          await topo.restart(step.node)
          result.restarts++
          result.faults.push(`restart ${step.node}`)
          await durability(step.node)
          break
        case 'kill':
          if (step.delayMs > 0) await sleep(step.delayMs)
          await topo.kill(step.node)
          result.kills++
          result.faults.push(`kill -9 ${step.node}+${step.delayMs}ms`)
          break
        case 'stop': {
          const e = await topo.stop(step.node)
          result.stops++
          result.faults.push(`stop ${step.node}`)
          if (e.code !== 0) result.violations.push({ kind: 'UNCLEAN_STOP', message: `clean stop of ${step.node} ended with code ${String(e.code)} signal ${String(e.signal)}${e.timedOut === true ? ' (timed out)' : ''}` })
          break
        }
        case 'pause': await sleep(step.ms); break
        case 'link':
          await topo.slowLink(step.a, step.b, { delayMs: step.delayMs, bytesPerSecond: step.bytesPerSecond, dropRate: step.dropRate })
          result.faults.push(describeStep(step))
          break
      }
    }
    // Lift every fault, bring every node back, wait for the steady state, then check.
    vlog('final: heal, restart every node that is down, wait for steady')
    await topo.heal()
    await topo.fixLinks()
    const down = topo.nodes.filter(n => !n.running).map(n => n.name)
    await Promise.all(down.map(async n => { await topo!.restart(n) }))
    for (const n of down) await durability(n)
    const t0 = Date.now()
    await topo.waitForSteady(plan.volume, { timeoutMs: opts.convergeTimeoutMs ?? 120_000 })
    result.convergeMs = Date.now() - t0
    const trees = new Map<string, TreeEntry[]>()
    for (const n of topo.names()) trees.set(n, await topo.tree(n, plan.volume))
    const check = history.check(plan.volume, trees)
    result.violations.push(...check.violations)
    result.stats = check.stats
    const tried = history.counts(plan.volume)
    const churn = await checkChurn(topo, plan.volume, tried.acked + tried.failed + tried.unknown)
    result.churn = churn.stats
    result.violations.push(...churn.violations)
  } catch (err) {
    result.violations.push({ kind: 'ERROR', message: `schedule error: ${(err as Error).message}` })
  } finally {
    if (topo !== undefined) {
      const exits = await topo.close()
      for (const [n, e] of exits) {
        if (e.code !== 0) result.violations.push({ kind: 'UNCLEAN_STOP', message: `final stop of ${n} ended with code ${String(e.code)} signal ${String(e.signal)}` })
      }
      // Once stopped, every member's own store must hold every chunk of its tree.
      if (result.stats !== undefined) {
        for (const n of topo.nodes) {
          result.violations.push(...await checkLocalChunks(n.name, n.dataDir, plan.volume).catch(err => [{ kind: 'ERROR' as const, message: `local check of ${n.name}: ${(err as Error).message}` }]))
        }
      }
    }
  }
  const c = history.counts(plan.volume)
  result.writes = { acked: c.acked, failed: c.failed, unknown: c.unknown, deletes: c.deletes }
  result.ok = result.violations.length === 0
  result.durationMs = Date.now() - started
  if (result.ok || opts.keepFailed === false) await rm(dir, { recursive: true, force: true, maxRetries: 3 })
  else result.dir = dir
  return result
}

async function runBurst (topo: Topology, plan: Plan, step: Extract<Step, { t: 'burst' }>, result: ScheduleResult): Promise<void> {
  const kill = step.kill
  let fire: () => void = () => {}
  const trigger = new Promise<void>(resolve => { fire = resolve })
  if (kill !== undefined && kill.afterAcks === 0) fire()
  let killer: Promise<void> | undefined
  if (kill !== undefined) {
    killer = (async () => {
      await trigger
      if (kill.delayMs > 0) await sleep(kill.delayMs)
      await topo.kill(kill.node)
      result.kills++
      result.faults.push(`kill -9 ${kill.node}@${kill.afterAcks}acks+${kill.delayMs}ms`)
    })()
  }
  await Promise.all(step.writers.map(async w => {
    let acks = 0
    for (const op of w.ops) {
      if (!topo.node(w.node).running) break // killed: the rest of its ops are never sent
      try {
        if (op.kind === 'put') await topo.write(w.node, plan.volume, op.path, contentOf(plan, op))
        else await topo.remove(w.node, plan.volume, op.path)
        acks++
      } catch (err) {
        // Recorded in the history (failed or unknown); a refused delete of an absent path is normal.
        log('%s %s on %s failed: %s', op.kind, op.path, w.node, (err as Error).message)
      }
      if (kill !== undefined && w.node === kill.node && acks >= kill.afterAcks) fire()
    }
  }))
  if (killer !== undefined) {
    fire() // its writer may have stopped short of the ack count (errors): the kill still happens
    await killer
  }
}
