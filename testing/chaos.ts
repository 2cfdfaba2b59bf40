/**
 * Randomized reliability runs: schedules of writes on several members mixed with kill -9 at
 * chosen points, clean stops, restarts, partitions and heals, slow or lossy links, on a fresh topology of process
 * nodes each; at the end every fault is lifted, every node restarted, and once the volume is
 * steady the history checker (history.ts) decides whether anything was lost.
 *
 * Determinism: a schedule is planned entirely from (seed, index) by a seeded PRNG before it
 * runs: node count, paths, every write's node, path, size and bytes, every fault, its target
 * and its point (a kill fires once its node has acknowledged N writes of the burst, plus a
 * delay of D ms). Replaying a seed replays the same plan: the same faults in the same order.
 * What cannot be replayed is timing: how far replication got before a kill or partition, and
 * which in-flight write a kill lands on, depend on the machine's load.
 */
import '../core/polyfill.js'
import { createCipheriv, createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Topology } from './topology.js'
import { History, type CheckStats, type TreeEntry, type Violation } from './history.js'
import { Store } from '../store/store.js'
import { sha256, hashHex } from '../store/chunk-store.js'
import { chunkHashes } from '../core/records.js'

// ---- seeded PRNG (xmur3 seeding, sfc32 generator: small, fast, identical on every platform) ----

function xmur3 (str: string): () => number {
  let h = 1779033703 ^ str.length
  for (let i = 0; i < str.length; i++) {
    h = Math.imul(h ^ str.charCodeAt(i), 3432918353)
    h = (h << 13) | (h >>> 19)
  }
  return () => {
    h = Math.imul(h ^ (h >>> 16), 2246822507)
    h = Math.imul(h ^ (h >>> 13), 3266489909)
    return (h ^= h >>> 16) >>> 0
  }
}

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor (seed: string) {
    const h = xmur3(seed)
    this.a = h(); this.b = h(); this.c = h(); this.d = h()
    for (let i = 0; i < 12; i++) this.next()
  }

  /** A float in [0, 1). */
  next (): number {
    this.a >>>= 0; this.b >>>= 0; this.c >>>= 0; this.d >>>= 0
    let t = (this.a + this.b) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.d = (this.d + 1) | 0
    t = (t + this.d) | 0
    this.c = (this.c + t) | 0
    return (t >>> 0) / 4294967296
  }

  /** An integer in [lo, hi]. */
  int (lo: number, hi: number): number { return lo + Math.floor(this.next() * (hi - lo + 1)) }
  chance (p: number): boolean { return this.next() < p }
  pick<T> (items: readonly T[]): T { return items[Math.floor(this.next() * items.length)] }
  shuffle<T> (items: readonly T[]): T[] {
    const out = [...items]
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1))
      ;[out[i], out[j]] = [out[j], out[i]]
    }
    return out
  }

  /** Picks a key by weight (weights of 0 are never picked). */
  weighted<K extends string> (weights: Record<K, number>): K {
    const entries = Object.entries(weights) as Array<[K, number]>
    const total = entries.reduce((s, [, w]) => s + w, 0)
    let x = this.next() * total
    for (const [k, w] of entries) {
      if (w <= 0) continue
      if ((x -= w) < 0) return k
    }
    return entries.filter(([, w]) => w > 0).at(-1)![0]
  }
}

// ---- plans ----

export interface PlannedOp { id: number, kind: 'put' | 'delete', path: string, size: number }
export interface Writer { node: string, ops: PlannedOp[] }
export interface KillPoint { node: string, afterAcks: number, delayMs: number }

export type Step =
  | { t: 'burst', writers: Writer[], kill?: KillPoint }
  | { t: 'restart', node: string }
  /** A kill -9 on its own, `delayMs` after the step before (a heal or restart): lands in catch-up or merge. */
  | { t: 'kill', node: string, delayMs: number }
  | { t: 'stop', node: string }
  | { t: 'partition', groups: string[][] }
  | { t: 'heal' }
  | { t: 'pause', ms: number }
  /** A slow or lossy link between two nodes (until the end of the schedule). */
  | { t: 'link', a: string, b: string, delayMs: number, bytesPerSecond: number | null, dropRate: number }

export interface Plan {
  seed: string
  index: number
  /** `${seed}/${index}`: everything in the plan derives from it. */
  id: string
  nodes: string[]
  volume: string
  chunkSize: number
  steps: Step[]
}

export interface PlanOptions {
  minNodes?: number
  maxNodes?: number
  minSteps?: number
  maxSteps?: number
}

const PATHS = ['/a.txt', '/b.bin', '/docs/c.md', '/docs/deep/d', '/e.log', '/f.tar.gz', '/g']

function size (rng: Rng): number {
  const r = rng.next()
  if (r < 0.65) return rng.int(64, 4096)
  if (r < 0.93) return rng.int(4097, 120_000)
  return rng.int(120_001, 900_000)
}

function split (rng: Rng, nodes: string[]): string[][] {
  const order = rng.shuffle(nodes)
  if (nodes.length >= 4 && rng.chance(0.2)) {
    const i = rng.int(1, nodes.length - 2)
    const j = rng.int(i + 1, nodes.length - 1)
    return [order.slice(0, i), order.slice(i, j), order.slice(j)]
  }
  const i = rng.int(1, nodes.length - 1)
  return [order.slice(0, i), order.slice(i)]
}

/** The plan of schedule `index` of `seed`: a pure function of its arguments. */
export function planSchedule (seed: string, index: number, opts: PlanOptions = {}): Plan {
  const id = `${seed}/${index}`
  const rng = new Rng(id)
  const n = rng.int(opts.minNodes ?? 3, opts.maxNodes ?? 5)
  const nodes = Array.from({ length: n }, (_, i) => `n${i + 1}`)
  const paths = rng.shuffle(PATHS).slice(0, rng.int(3, 6))
  const count = rng.int(opts.minSteps ?? 8, opts.maxSteps ?? 14)
  const partitionAt = rng.chance(0.85) ? rng.int(0, Math.floor(count / 2)) : -1
  const killAt = rng.int(1, count - 1)
  const up = new Set(nodes)
  let partitioned = false
  let nextOp = 1
  const steps: Step[] = []
  const burst = (kill: boolean): Step => {
    const live = nodes.filter(x => up.has(x))
    const writers = rng.shuffle(live).slice(0, rng.int(1, Math.min(3, live.length)))
    let target: string | undefined
    if (kill) {
      target = rng.pick(live)
      if (!writers.includes(target)) writers.push(target)
    }
    const ws: Writer[] = writers.map(node => ({
      node,
      ops: Array.from({ length: rng.int(1, 4) }, () => {
        const del = rng.chance(0.12)
        return { id: nextOp++, kind: del ? 'delete' as const : 'put' as const, path: rng.pick(paths), size: del ? 0 : size(rng) }
      })
    }))
    if (target === undefined) return { t: 'burst', writers: ws }
    up.delete(target)
    const own = ws.find(w => w.node === target)!.ops.length
    return { t: 'burst', writers: ws, kill: { node: target, afterAcks: rng.int(0, own), delayMs: rng.chance(0.5) ? 0 : rng.int(1, 40) } }
  }
  for (let s = 0; s < count; s++) {
    if (s === partitionAt) {
      steps.push({ t: 'partition', groups: split(rng, nodes) })
      partitioned = true
      continue
    }
    const down = nodes.filter(x => !up.has(x))
    const kind = s === killAt && up.size >= 2
      ? 'kill'
      : rng.weighted({
        burst: 3,
        kill: up.size >= 2 ? 2.5 : 0,
        restart: down.length > 0 ? 3 : 0,
        stop: up.size >= 2 ? 0.4 : 0,
        partition: partitionAt >= 0 && s > partitionAt ? 0.5 : 0,
        heal: partitioned ? 1.2 : 0,
        pause: 0.3,
        link: 0.6
      })
    switch (kind) {
      case 'burst': steps.push(burst(false)); break
      case 'kill': steps.push(burst(true)); break
      case 'restart': {
        const x = rng.pick(down)
        up.add(x)
        steps.push({ t: 'restart', node: x })
        // Sometimes killed again at once: during its merge after the unclean stop, or its catch-up.
        if (rng.chance(0.3) && up.size >= 2) { up.delete(x); steps.push({ t: 'kill', node: x, delayMs: rng.int(0, 400) }) }
        break
      }
      case 'stop': { const x = rng.pick(nodes.filter(y => up.has(y))); up.delete(x); steps.push({ t: 'stop', node: x }); break }
      case 'partition': steps.push({ t: 'partition', groups: split(rng, nodes) }); partitioned = true; break
      case 'heal': {
        steps.push({ t: 'heal' })
        partitioned = false
        // Sometimes a member dies while the groups catch up with each other.
        if (rng.chance(0.4) && up.size >= 2) {
          const x = rng.pick(nodes.filter(y => up.has(y)))
          up.delete(x)
          steps.push({ t: 'kill', node: x, delayMs: rng.int(0, 400) })
        }
        break
      }
      case 'pause': steps.push({ t: 'pause', ms: rng.int(50, 600) }); break
      case 'link': {
        const a = rng.pick(nodes)
        const b = rng.pick(nodes.filter(y => y !== a))
        steps.push({ t: 'link', a, b, delayMs: rng.int(0, 80), bytesPerSecond: rng.pick([null, 4_000_000, 1_000_000]), dropRate: rng.pick([0, 0.05, 0.2]) })
        break
      }
    }
  }
  // Every schedule has at least one kill point in a burst of writes.
  if (!steps.some(s => s.t === 'burst' && s.kill !== undefined)) {
    if (up.size < 2) {
      const x = rng.pick(nodes.filter(y => !up.has(y)))
      up.add(x)
      steps.push({ t: 'restart', node: x })
    }
    steps.push(burst(true))
  }
  return { seed, index, id, nodes, volume: 'chaos', chunkSize: 16 * 1024, steps }
}

/** The bytes of a planned put: unique per (plan, op), identical on every replay. */
export function contentOf (plan: Plan, op: PlannedOp): Buffer {
  const header = Buffer.from(`chaos ${plan.id} op ${op.id} ${op.path}\n`)
  if (op.size <= header.byteLength) return header.subarray(0, Math.max(op.size, 0))
  const key = createHash('sha256').update(`${plan.id}/${op.id}`).digest()
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32))
  return Buffer.concat([header, cipher.update(Buffer.alloc(op.size - header.byteLength)), cipher.final()])
}

export function describeStep (step: Step): string {
  switch (step.t) {
    case 'burst': {
      const w = step.writers.map(x => `${x.node}:${x.ops.map(o => `${o.kind === 'put' ? 'put' : 'del'} ${o.path}${o.kind === 'put' ? ` ${o.size}B` : ''}`).join(', ')}`).join(' | ')
      return `writes [${w}]${step.kill !== undefined ? ` + kill -9 ${step.kill.node} after ${step.kill.afterAcks} acks +${step.kill.delayMs}ms` : ''}`
    }
    case 'partition': return `partition ${step.groups.map(g => `[${g.join(',')}]`).join(' ')}`
    case 'restart': return `restart ${step.node}`
    case 'kill': return `kill -9 ${step.node} after ${step.delayMs}ms`
    case 'stop': return `stop ${step.node}`
    case 'heal': return 'heal'
    case 'pause': return `pause ${step.ms}ms`
    case 'link': return `link ${step.a}<->${step.b} delay ${step.delayMs}ms${step.bytesPerSecond !== null ? ` ${step.bytesPerSecond} B/s` : ''} loss ${step.dropRate}`
  }
}

// ---- running ----

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

/**
 * Opens a stopped node's store and checks that it holds, locally, every chunk of every live
 * file of `volume`, with the right hash: a steady member holds its data, it does not merely
 * know where to fetch it (reads through the API would fetch a missing chunk from a peer).
 */
export async function checkLocalChunks (node: string, dataDir: string, volume: string): Promise<Violation[]> {
  const store = await Store.open(dataDir)
  const out: Violation[] = []
  try {
    for await (const rec of store.listFiles(volume)) {
      if (rec.deleted) continue
      const hashes = [...chunkHashes(rec)]
      const bytes = await store.chunks.getMany(hashes)
      const bad = hashes.filter((h, i) => bytes[i] === undefined || Buffer.compare(sha256(bytes[i]!), h) !== 0)
      if (bad.length > 0) {
        out.push({ kind: 'MISSING_CHUNK', path: rec.path, message: `${node} lists ${rec.path} but lacks ${bad.length} of its ${hashes.length} chunks locally (first ${hashHex(bad[0]).slice(0, 12)})` })
      }
    }
  } finally {
    await store.close()
  }
  return out
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
      } catch {
        // Recorded in the history (failed or unknown); a refused delete of an absent path is normal.
      }
      if (kill !== undefined && w.node === kill.node && acks >= kill.afterAcks) fire()
    }
  }))
  if (killer !== undefined) {
    fire() // its writer may have stopped short of the ack count (errors): the kill still happens
    await killer
  }
}

export interface ChaosOptions extends RunOptions, PlanOptions {
  seed: string
  /** Number of schedules (from index `from`, default 0). */
  schedules: number
  from?: number
  /** Stop at the first failing schedule. */
  bail?: boolean
}

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
  return `schedule ${r.id}: ${r.nodes} nodes | faults: ${r.faults.length > 0 ? r.faults.join(', ') : 'none'} | writes acked ${r.writes.acked} (failed ${r.writes.failed}, unknown ${r.writes.unknown}, deletes ${r.writes.deletes})${checked}` +
    `${r.convergeMs !== undefined ? ` | steady in ${(r.convergeMs / 1000).toFixed(1)}s` : ''} | ${r.ok ? 'OK' : 'FAILED'} in ${(r.durationMs / 1000).toFixed(1)}s`
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
