/**
 * Runs one chaos plan on a fresh topology of process nodes: its steps in order, then every
 * fault lifted, every node restarted and made a member of every volume again; once the volumes
 * are steady the history checker (history.ts) decides whether anything was lost. What cannot
 * be replayed is timing: how far replication got before a kill or partition, and which
 * in-flight request a kill lands on, depend on the machine's load.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { Topology } from './topology.js'
import { History, sha256Hex, type CheckStats, type TreeEntry, type Violation } from './history.js'
import { checkLocalChunks } from './local-chunks.js'
import { contentOf, describeStep, type Mode, type Plan } from './chaos-plan.js'
import { killNode, newCounters, runBurst, runCrash, runRestore, type StepContext, type StepCounters } from './chaos-steps.js'
import { RssSampler, churnOf, type Churn } from './chaos-observe.js'
import { poll } from './topology-waits.js'
import { checkChurn, type ChurnStats } from './chaos-churn.js'
import { splitGenerations, type HeldConfiguration } from './chaos-splits.js'
import { nextMembersStep, type HeldConfig } from './chaos-members.js'

export interface ScheduleResult {
  id: string
  index: number
  nodes: number
  modes: Mode[]
  ok: boolean
  /** Faults in the order applied: "kill -9 n2@1acks+12ms", "partition [n1][n2,n3]", ... */
  faults: string[]
  kills: number
  powerLosses: number
  partitions: number
  links: number
  restarts: number
  /** Generations found with two configurations at the end (each also a SPLIT_GENERATION violation), resolved by a further change so the rest can be checked. */
  configSplits: { count: number }
  stops: number
  counters: StepCounters
  writes: { acked: number, failed: number, unknown: number, deletes: number, ackedByMode: Record<Mode, number> }
  stats?: CheckStats
  /** Per volume: each member's seq and local changes by cause once steady (chaos-churn.ts). */
  churnStats: Record<string, ChurnStats>
  violations: Violation[]
  /** Not failures: change churn past the warning ratio. */
  warnings: string[]
  churn: Churn[]
  maxRss: Record<string, number>
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
  /** A node whose RSS goes past this fails the schedule (default 512 MiB). */
  maxRssBytes?: number
  /** Local change-log entries per acknowledged write past which a member is reported (default 8). */
  churnWarnRatio?: number
  /** Pack size of the nodes (default 256 KiB: packs roll, so repacks have work). */
  packTargetBytes?: number
}

export const DEFAULT_MAX_RSS = 512 * 1024 * 1024

/** Runs one planned schedule on a fresh topology of process nodes. */
export async function runSchedule (plan: Plan, opts: RunOptions = {}): Promise<ScheduleResult> {
  const started = Date.now()
  const log = opts.log ?? (() => {})
  const vlog = (s: string): void => { if (opts.verbose === true) log(`  [${((Date.now() - started) / 1000).toFixed(1)}s] ${s}`) }
  const history = new History()
  const counters = newCounters()
  const result: ScheduleResult = {
    id: plan.id, index: plan.index, nodes: plan.nodes.length, modes: plan.volumes.map(v => v.mode), ok: false, faults: counters.faults, kills: 0, powerLosses: 0, partitions: 0, links: 0, restarts: 0, stops: 0,
    counters, writes: { acked: 0, failed: 0, unknown: 0, deletes: 0, ackedByMode: { active: 0, all: 0 } }, violations: [], warnings: [], churn: [], churnStats: {}, configSplits: { count: 0 }, maxRss: {}, durationMs: 0
  }
  const dir = await mkdtemp(join(opts.baseDir ?? tmpdir(), `replicant-chaos-${plan.seed.replace(/[^a-zA-Z0-9_-]/g, '_')}-${plan.index}-`))
  let topo: Topology | undefined
  let rss: RssSampler | undefined
  const volumes = [...plan.volumes.map(v => v.name)]
  const durability = async (node: string): Promise<void> => {
    // The node's own state only moves forward: what it acknowledged before it went down is still there.
    for (const v of volumes) {
      const files = await topo!.list(node, v).catch(() => undefined) // not (or no longer) a member
      if (files === undefined) continue
      const tree: TreeEntry[] = files.map(f => ({ path: f.path, size: f.size, version: f.version, sha256: '' }))
      result.violations.push(...history.checkNodeDurability(v, node, tree))
    }
  }
  try {
    topo = await Topology.start({ nodes: plan.nodes, dir, keepDir: true, history, bin: opts.bin, startArgs: ['--pack-target', String(opts.packTargetBytes ?? 256 * 1024)], onEvent: e => vlog(`${e.kind}${e.node !== undefined ? ` ${e.node}` : ''}${e.detail !== undefined ? ` ${e.detail}` : ''}`) })
    const t = topo
    rss = new RssSampler(() => t.nodes)
    const ctx: StepContext = { topo, plan, history, dir, counters, violations: result.violations, members: new Map(), removals: [], vlog }
    history.membersAt = v => { const m = ctx.members.get(v); return m === undefined ? undefined : [...m] }
    for (const v of plan.volumes) {
      await topo.createVolume(v.name, { members: v.members, chunkSize: plan.chunkSize, writeMode: v.mode }, { timeoutMs: 60_000 })
      ctx.members.set(v.name, new Set(v.members))
    }
    await topo.createVolume(plan.solo.name, { members: [plan.solo.node], chunkSize: plan.chunkSize }, { timeoutMs: 60_000 })
    for (const f of plan.solo.files) await topo.client(plan.solo.node).put(plan.solo.name, f.path, Readable.from([contentOf(plan, f)]), { size: f.size })
    await writeJunk(topo, plan)
    ctx.junkWrittenAt = Date.now()
    for (const step of plan.steps) {
      vlog(`step: ${describeStep(step)}`)
      switch (step.t) {
        case 'burst': await runBurst(ctx, step); break
        case 'crash': await runCrash(ctx, step); break
        case 'restore': await runRestore(ctx, step); break
        case 'partition':
          await topo.partition(...step.groups)
          result.partitions++
          counters.faults.push(describeStep(step))
          break
        case 'heal': await topo.heal(); counters.faults.push('heal'); break
        case 'recover': {
          await topo.heal()
          await topo.fixLinks()
          const down = topo.nodes.filter(n => !n.running).map(n => n.name)
          await Promise.all(down.map(async n => { await topo!.restart(n) }))
          for (const n of down) await durability(n)
          result.restarts += down.length
          counters.faults.push(`recover (restart ${down.join(',') || 'none'})`)
          break
        }
        case 'restart': {
          const down = step.nodes.filter(n => !topo!.node(n).running)
          if (down.length === 0) break
          await Promise.all(down.map(async n => { await topo!.restart(n) }))
          result.restarts += down.length
          counters.faults.push(`restart ${down.join(',')}`)
          for (const n of down) await durability(n)
          break
        }
        case 'kill':
          if (step.delayMs > 0) await sleep(step.delayMs)
          if (topo.node(step.node).running) await killNode(ctx, step.node, step.power, `+${step.delayMs}ms`)
          break
        case 'stop': {
          if (!topo.node(step.node).running) break
          const e = await topo.stop(step.node)
          result.stops++
          counters.faults.push(`stop ${step.node}`)
          if (e.code !== 0) result.violations.push({ kind: 'UNCLEAN_STOP', message: `clean stop of ${step.node} ended with code ${String(e.code)} signal ${String(e.signal)}${e.timedOut === true ? ' (timed out)' : ''}` })
          break
        }
        case 'pause': await sleep(step.ms); break
        case 'link':
          await topo.slowLink(step.a, step.b, { delayMs: step.delayMs, bytesPerSecond: step.bytesPerSecond, dropRate: step.dropRate }, step.seed)
          result.links++
          counters.faults.push(describeStep(step))
          break
      }
    }
    // Lift every fault, bring every node back, make every node a member of every volume again.
    vlog('final: heal, restart every node that is down, re-add every non-member, wait for steady')
    await topo.heal()
    await topo.fixLinks()
    const down = topo.nodes.filter(n => !n.running).map(n => n.name)
    await Promise.all(down.map(async n => { await topo!.restart(n) }))
    for (const n of down) await durability(n)
    const t0 = Date.now()
    for (const v of volumes) await everyoneMember(topo, v, vlog, result.configSplits)
    // Every (generation, id) any node held: two ids for one generation fail the schedule.
    for (const v of volumes) result.violations.push(...splitGenerations(v, await heldConfigurations(topo, v)))
    for (const v of volumes) await topo.waitForSteady(v, { nodes: topo.names(), timeoutMs: opts.convergeTimeoutMs ?? 120_000 })
    result.convergeMs = Date.now() - t0
    const stats: CheckStats[] = []
    for (const v of volumes) {
      const trees = new Map<string, TreeEntry[]>()
      for (const n of topo.names()) trees.set(n, await readTree(topo, n, v))
      const check = history.check(v, trees)
      result.violations.push(...check.violations, ...history.checkReads(v))
      if (plan.volumes.find(p => p.name === v)?.mode === 'all') {
        result.violations.push(...history.checkAllMode(v, trees, (node, op) => !ctx.removals.some(r => r.volume === v && r.node === node && r.at >= op.startedAt)))
      }
      stats.push(check.stats)
      const acked = history.ops(v).filter(o => o.status === 'acked').length
      result.churn.push(...await churnOf(topo.nodes, v, acked))
      // Quiet once steady, and local changes bounded by the writes tried (chaos-churn.ts).
      const quiet = await checkChurn(topo, v, history.ops(v).length)
      result.churnStats[v] = quiet.stats
      result.violations.push(...quiet.violations)
    }
    result.stats = sumStats(stats)
    for (const c of result.churn) if (c.ratio > (opts.churnWarnRatio ?? 8)) result.warnings.push(`churn: ${c.node} used ${c.seq} local sequence numbers of ${c.volume} for ${c.acked} acknowledged writes (${c.ratio.toFixed(1)} per write)`)
  } catch (err) {
    result.violations.push({ kind: 'ERROR', message: `schedule error: ${(err as Error).message}` })
  } finally {
    const max = await rss?.stop()
    if (topo !== undefined) {
      const exits = await topo.close()
      for (const [n, e] of exits) {
        if (e.code !== 0) result.violations.push({ kind: 'UNCLEAN_STOP', message: `final stop of ${n} ended with code ${String(e.code)} signal ${String(e.signal)}` })
      }
      // Once stopped, every member's own store must hold every chunk of its tree.
      if (result.stats !== undefined) {
        for (const n of topo.nodes) {
          for (const v of volumes) result.violations.push(...await checkLocalChunks(n.name, n.dataDir, v).catch(err => [{ kind: 'ERROR' as const, message: `local check of ${n.name}: ${(err as Error).message}` }]))
        }
      }
    }
    for (const [n, b] of max ?? []) {
      result.maxRss[n] = b
      if (b > (opts.maxRssBytes ?? DEFAULT_MAX_RSS)) result.violations.push({ kind: 'RSS_BOUND', message: `${n} reached ${(b / 2 ** 20).toFixed(0)} MiB RSS, past the bound of ${((opts.maxRssBytes ?? DEFAULT_MAX_RSS) / 2 ** 20).toFixed(0)} MiB` })
    }
  }
  for (const v of plan.volumes) {
    const c = history.counts(v.name)
    result.writes.acked += c.acked
    result.writes.failed += c.failed
    result.writes.unknown += c.unknown
    result.writes.deletes += c.deletes
    result.writes.ackedByMode[v.mode] += c.acked
  }
  result.kills = counters.kills
  result.restarts += counters.restarts
  result.powerLosses = counters.powerLosses
  result.ok = result.violations.length === 0
  result.durationMs = Date.now() - started
  if (result.ok || opts.keepFailed === false) await rm(dir, { recursive: true, force: true, maxRetries: 3 })
  else result.dir = dir
  return result
}

function sumStats (all: CheckStats[]): CheckStats {
  const out: CheckStats = { files: 0, conflictCopies: 0, ackedPuts: 0, ackedDeletes: 0, present: 0, superseded: 0, uncertain: 0 }
  for (const s of all) for (const k of Object.keys(out) as Array<keyof CheckStats>) out[k] += s[k]
  return out
}

/** A member's tree read back; a file that cannot be read shows as bytes nobody wrote (so it fails as lost). */
async function readTree (topo: Topology, node: string, volume: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = []
  for (const f of await topo.list(node, volume)) {
    const sha256 = await topo.read(node, volume, f.path).then(b => sha256Hex(b), (err: Error) => `unreadable: ${err.message}`)
    out.push({ path: f.path, size: f.size, version: f.version, sha256 })
  }
  return out
}

/**
 * The GC fodder of the crash steps (plan.junk), each set in a volume of its node alone: a keeper
 * then a doomed file, in turn, then the spacer, so the packs they share end up mostly dead.
 */
async function writeJunk (topo: Topology, plan: Plan): Promise<void> {
  const made = new Set<string>()
  for (const j of plan.junk) {
    if (!made.has(j.volume)) {
      await topo.createVolume(j.volume, { members: [j.node], chunkSize: plan.chunkSize }, { timeoutMs: 60_000 })
      made.add(j.volume)
    }
    const order = j.doomed.flatMap((d, i) => i < j.keep.length ? [j.keep[i], d] : [d])
    for (const f of order) await topo.client(j.node).put(j.volume, f.path, Readable.from([contentOf(plan, f)]), { size: f.size })
  }
}

async function heldConfigurations (topo: Topology, volume: string): Promise<HeldConfiguration[]> {
  const out: HeldConfiguration[] = []
  for (const n of topo.nodes) {
    const info = await n.client.volumeInfo(volume).catch(() => undefined)
    if (info !== undefined) out.push({ node: n.name, generation: info.generation, ...(info.genId !== undefined ? { genId: info.genId } : {}), history: info.history ?? [] })
  }
  return out
}

/**
 * Adds back every node that is not a member of `volume` (removed, or a spare never added), until
 * all are. Two configurations of one generation should not happen without --force (which the
 * chaos never uses): the final check reports each as a SPLIT_GENERATION failure. So that the
 * rest of the schedule can still be checked, this resolves one as an operator would, with a
 * change through a holder of one of them, preferring one that lacks a node, so that its next
 * generation supersedes both. `splits` counts the generations found split here.
 */
async function everyoneMember (topo: Topology, volume: string, vlog: (s: string) => void, splits: { count: number }): Promise<void> {
  topo.forgetMembers(volume)
  const seen = new Set<string>()
  await poll(`every node a member of ${volume}`, { timeoutMs: 90_000, intervalMs: 200 }, async () => {
    // The newest configurations nodes hold (a removed node keeps an older one).
    const held: HeldConfig[] = []
    for (const n of topo.nodes) {
      const info = await n.client.volumeInfo(volume).catch(() => undefined)
      if (info !== undefined) held.push({ node: n.name, members: [...info.members].sort(), generation: info.generation, ...(info.genId !== undefined ? { genId: info.genId } : {}), history: info.history ?? [] })
    }
    const step = nextMembersStep(held, topo.nodes)
    for (const g of step.split) if (!seen.has(`s${g}`)) { seen.add(`s${g}`); splits.count++; vlog(`generation ${g} of ${volume} is split`) }
    for (const g of step.forked) if (!seen.has(`f${g}`)) { seen.add(`f${g}`); splits.count++; vlog(`generation ${g} of ${volume} forked off below the newest`) }
    if (step.kind === 'done') return true
    if (step.kind === 'add') await topo.addReplica(volume, step.via, step.node).catch((err: Error) => { vlog(`final add-replica ${volume} ${step.node}: ${err.message}`) })
    if (step.kind === 'remove') await topo.removeReplica(volume, step.via, step.node).catch((err: Error) => { vlog(`final remove-replica ${volume} ${step.node}: ${err.message}`) })
    return undefined
  })
}
