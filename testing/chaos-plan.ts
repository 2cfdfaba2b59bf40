/**
 * Chaos plans: a schedule planned entirely from (seed, index) by a seeded PRNG before it runs:
 * node count, volumes (`active`, `all` or both, each on every node or all but a spare), paths,
 * every lane of writes and reads (several lanes may share a node), every fault and its point,
 * membership changes, snapshots, GC and dumps run beside the writes, crashes at named points
 * (core/crash-points.ts) and power losses. Replaying a seed replays the same plan.
 * Step kinds and side operations are described in docs/TOPOLOGY.md.
 */
import { createCipheriv, createHash } from 'node:crypto'
import { Rng } from './rng.js'
import type { CrashPoint } from '../core/crash-points.js'

export type Mode = 'active' | 'all'
export interface PlannedOp { id: number, kind: 'put' | 'delete' | 'read', volume: string, path: string, size: number }
/** One lane: its ops are sent one after the other; lanes run at once, several may share a node. */
export interface Writer { node: string, ops: PlannedOp[] }
/** A kill -9 once `node` acknowledged `afterAcks` ops of the burst, plus `delayMs`; `power`: then its packs are cut to what was fsynced. */
export interface KillPoint { node: string, afterAcks: number, delayMs: number, power: boolean }
/** Run beside a burst's writes, `delayMs` after it starts. `via`: who to ask, in order (the first running member). */
export type SideOp =
  | { t: 'member', op: 'add' | 'remove', volume: string, node: string, via: string[], delayMs: number }
  | { t: 'snapshot', volume: string, via: string[], delayMs: number }
  | { t: 'gc', via: string[], repack: boolean, delayMs: number }
  | { t: 'dump', volume: string, via: string[], delayMs: number }

export type Step =
  | { t: 'burst', writers: Writer[], kill?: KillPoint, side: SideOp[] }
  /** Every node named restarts at once (in parallel). */
  | { t: 'restart', nodes: string[] }
  /** A kill -9 on its own, `delayMs` after the step before (a heal or restart): lands in catch-up or merge. */
  | { t: 'kill', node: string, delayMs: number, power: boolean }
  | { t: 'stop', node: string }
  | { t: 'partition', groups: string[][] }
  | { t: 'heal' }
  /** Heal, lift the links and restart every node that is down: all-mode writes can be acknowledged again. */
  | { t: 'recover' }
  | { t: 'pause', ms: number }
  /** A slow or lossy link between two nodes (until the end of the schedule); its losses follow `seed`. */
  | { t: 'link', a: string, b: string, delayMs: number, bytesPerSecond: number | null, dropRate: number, seed: string }
  /**
   * `node` arms `point`, then the operation that passes it runs there: a GC with repack (after
   * the files of `junk` are deleted, so it has something to sweep and a sparse pack to copy) or
   * an all-mode put it coordinates (`op`; every member is up and linked just before).
   */
  | { t: 'crash', node: string, point: CrashPoint, op?: PlannedOp, junk?: number }
  /**
   * The dump of the solo volume restored on `node` (which does not hold it yet); `crash`: killed
   * inside, restarted at once, what is left checked, and restored again over it.
   */
  | { t: 'restore', node: string, crash: boolean }

export interface PlanVolume { name: string, mode: Mode, members: string[], paths: string[] }

export interface Plan {
  seed: string
  index: number
  /** `${seed}/${index}`: everything in the plan derives from it. */
  id: string
  nodes: string[]
  volumes: PlanVolume[]
  /** A volume on `solo.node` only, written at setup: the source of dumps restored elsewhere. */
  solo: { name: string, node: string, files: PlannedOp[] }
  /**
   * GC fodder, written at setup in a volume of `node` alone: `doomed` paths are deleted just
   * before crash step `junk` = index here; the `keep` ones stay, so their packs become sparse.
   */
  junk: Array<{ node: string, volume: string, doomed: PlannedOp[], keep: PlannedOp[] }>
  chunkSize: number
  steps: Step[]
}

export interface PlanOptions {
  minNodes?: number
  maxNodes?: number
  minSteps?: number
  maxSteps?: number
  /** Kill points (SIGKILLs, power losses, crash points) per schedule: steps are added until reached. */
  minKills?: number
  maxKills?: number
  /** Which write modes a schedule may use (default both). */
  modes?: Mode[]
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

function volumesOf (rng: Rng, nodes: string[], modes: Mode[]): PlanVolume[] {
  const pick = modes.length === 1 ? modes : rng.weighted({ both: 2, active: 1, all: 1 }) === 'both' ? modes : [rng.pick(modes)]
  return pick.map(mode => {
    // A spare joins later by add-replica (a wannabe copying while writes go on).
    const spare = nodes.length >= 3 && rng.chance(0.4) ? rng.pick(nodes) : undefined
    return { name: `chaos-${mode}`, mode, members: nodes.filter(n => n !== spare), paths: rng.shuffle(PATHS).slice(0, rng.int(3, 6)) }
  })
}

/** The plan of schedule `index` of `seed`: a pure function of its arguments. */
export function planSchedule (seed: string, index: number, opts: PlanOptions = {}): Plan {
  const id = `${seed}/${index}`
  const rng = new Rng(id)
  const n = rng.int(opts.minNodes ?? 3, opts.maxNodes ?? 5)
  const nodes = Array.from({ length: n }, (_, i) => `n${i + 1}`)
  const volumes = volumesOf(rng, nodes, opts.modes ?? ['active', 'all'])
  let nextOp = 1
  const soloNode = rng.pick(nodes)
  const solo = { name: 'chaos-solo', node: soloNode, files: [1, 2, 3].map(i => ({ id: nextOp++, kind: 'put' as const, volume: 'chaos-solo', path: `/solo-${i}`, size: rng.int(300_000, 700_000) })) }
  const count = rng.int(opts.minSteps ?? 8, opts.maxSteps ?? 14)
  const partitionAt = rng.chance(0.85) ? rng.int(0, Math.floor(count / 2)) : -1
  const killAt = rng.int(1, count - 1)
  const up = new Set(nodes)
  const members = new Map(volumes.map(v => [v.name, new Set(v.members)]))
  const restored = new Set<string>([soloNode])
  let partitioned = false
  const steps: Step[] = []
  const via = (): string[] => rng.shuffle(nodes)
  const op = (vol: PlanVolume, path?: string): PlannedOp => {
    const kind = rng.weighted({ put: 7, delete: 1, read: 1.5 })
    return { id: nextOp++, kind, volume: vol.name, path: path ?? rng.pick(vol.paths), size: kind === 'put' ? size(rng) : 0 }
  }
  const side = (): SideOp[] => {
    const out: SideOp[] = []
    for (let i = Number(rng.weighted({ 0: 3, 1: 3, 2: 1 })); i > 0; i--) {
      const vol = rng.pick(volumes)
      const kind = rng.weighted({ member: 3, snapshot: 1, gc: 1.2, dump: 0.8 })
      const delayMs = rng.int(0, 300)
      if (kind === 'member') {
        const m = members.get(vol.name)!
        const outside = nodes.filter(x => !m.has(x))
        if (outside.length > 0 && (m.size <= 2 || rng.chance(0.6))) {
          const x = rng.pick(outside)
          m.add(x)
          out.push({ t: 'member', op: 'add', volume: vol.name, node: x, via: via(), delayMs })
          // Sometimes removed again mid-copy, and added back: it must resume its copy.
          if (rng.chance(0.35)) {
            const later = delayMs + rng.int(50, 400)
            out.push({ t: 'member', op: 'remove', volume: vol.name, node: x, via: via(), delayMs: later })
            out.push({ t: 'member', op: 'add', volume: vol.name, node: x, via: via(), delayMs: later + rng.int(50, 400) })
          }
        } else if (m.size > 2) {
          const x = rng.pick([...m])
          m.delete(x)
          out.push({ t: 'member', op: 'remove', volume: vol.name, node: x, via: via(), delayMs })
        }
      } else if (kind === 'gc') out.push({ t: 'gc', via: via(), repack: rng.chance(0.7), delayMs })
      else out.push({ t: kind, volume: vol.name, via: via(), delayMs })
    }
    return out
  }
  const link = (linkSeed: string): Step => {
    const a = rng.pick(nodes)
    const b = rng.pick(nodes.filter(y => y !== a))
    return { t: 'link', a, b, delayMs: rng.int(0, 80), bytesPerSecond: rng.pick([null, 4_000_000, 1_000_000]), dropRate: rng.pick([0, 0.05, 0.2]), seed: linkSeed }
  }
  const burst = (kill: boolean): Step => {
    const live = nodes.filter(x => up.has(x))
    const lanes = rng.int(1, 4)
    // A hot burst: every lane writes one path of one volume (concurrent writes to one path).
    const hot = rng.chance(0.2) ? { vol: rng.pick(volumes), path: '' } : undefined
    if (hot !== undefined) hot.path = rng.pick(hot.vol.paths)
    const ws: Writer[] = Array.from({ length: lanes }, () => ({
      node: rng.pick(live),
      ops: Array.from({ length: rng.int(1, 4) }, () => hot !== undefined ? op(hot.vol, hot.path) : op(rng.pick(volumes)))
    }))
    const sides = side()
    if (!kill) return { t: 'burst', writers: ws, side: sides }
    const target = rng.pick(live)
    if (!ws.some(w => w.node === target)) ws.push({ node: target, ops: [op(rng.pick(volumes))] })
    up.delete(target)
    const own = ws.filter(w => w.node === target).reduce((s, w) => s + w.ops.length, 0)
    return { t: 'burst', writers: ws, side: sides, kill: { node: target, afterAcks: rng.int(0, own), delayMs: rng.chance(0.5) ? 0 : rng.int(1, 40), power: rng.chance(0.3) } }
  }
  const junk: Plan['junk'] = []
  const crash = (): Step[] => {
    const allVol = volumes.find(v => v.mode === 'all')
    const points: CrashPoint[] = ['gc-sweep', 'repack-copied', 'repack-switched', ...(allVol !== undefined ? ['all-prepared', 'all-decided'] as const : [])]
    const point = rng.pick(points)
    const out: Step[] = []
    if (allVol !== undefined && point.startsWith('all-')) {
      // An all-mode write reaches prepare only with every member up and linked: recover first.
      if (partitioned || up.size < nodes.length) {
        out.push({ t: 'recover' })
        for (const x of nodes) up.add(x)
        partitioned = false
      }
      const node = rng.pick([...members.get(allVol.name)!])
      up.delete(node)
      out.push({ t: 'crash', node, point, op: { id: nextOp++, kind: 'put', volume: allVol.name, path: rng.pick(allVol.paths), size: size(rng) } })
      return out
    }
    const node = rng.pick(nodes.filter(x => up.has(x)))
    up.delete(node)
    // Small keepers between doomed files leave their packs mostly dead (a repack copies them); the spacer rolls the pack.
    const volume = `chaos-junk-${node}`
    const n = junk.length
    const files = (tag: string, k: number, lo: number, hi: number): PlannedOp[] => Array.from({ length: k }, (_, i) => ({ id: nextOp++, kind: 'put' as const, volume, path: `/${n}-${tag}${i}`, size: rng.int(lo, hi) }))
    junk.push({ node, volume, keep: files('keep', 6, 2_000, 6_000), doomed: [...files('doomed', 6, 20_000, 40_000), ...files('spacer', 1, 300_000, 400_000)] })
    out.push({ t: 'crash', node, point, junk: n })
    return out
  }
  const killTarget = rng.int(opts.minKills ?? 8, opts.maxKills ?? 12)
  let kills = 0
  // An all-mode write needs every member: a schedule with an all volume recovers once midway, then goes on.
  const recoverAt = volumes.some(v => v.mode === 'all') ? rng.int(Math.floor(count / 3), Math.max(Math.floor(count / 3), count - 3)) : -1
  // Steps beyond `count` are added until the schedule has its kill points (bounded).
  for (let s = 0; (s < count || kills < killTarget) && s < count + 4 * killTarget; s++) {
    if (s === recoverAt) {
      steps.push({ t: 'recover' })
      for (const x of nodes) up.add(x)
      partitioned = false
      continue
    }
    if (s === partitionAt) {
      steps.push({ t: 'partition', groups: split(rng, nodes) })
      partitioned = true
      continue
    }
    const down = nodes.filter(x => !up.has(x))
    const short = kills < killTarget
    const kind = s === killAt && up.size >= 2
      ? 'kill'
      : rng.weighted({
        burst: 3,
        kill: up.size >= 2 ? (short ? 4 : 1) : 0,
        restart: down.length > 0 ? (up.size < 2 ? 8 : 3) : 0,
        stop: up.size >= 2 ? 0.4 : 0,
        partition: partitionAt >= 0 && s > partitionAt ? 0.5 : 0,
        heal: partitioned ? 1.2 : 0,
        pause: 0.3,
        link: 0.6,
        crash: up.size >= 2 ? (short ? 2 : 0.5) : 0,
        restore: up.has(soloNode) && nodes.some(x => up.has(x) && !restored.has(x)) ? 0.6 : 0
      })
    switch (kind) {
      case 'burst': steps.push(burst(false)); break
      case 'kill': steps.push(burst(true)); kills++; break
      case 'crash': steps.push(...crash()); kills++; break
      case 'restore': {
        const x = rng.pick(nodes.filter(y => up.has(y) && !restored.has(y)))
        restored.add(x)
        const dies = rng.chance(0.5)
        if (dies) kills++
        steps.push({ t: 'restore', node: x, crash: dies })
        break
      }
      case 'restart': {
        // Several nodes restart at once half of the time: one start-up's wait for all of them.
        const xs = down.length > 1 && rng.chance(0.5) ? down : [rng.pick(down)]
        for (const x of xs) up.add(x)
        steps.push({ t: 'restart', nodes: xs })
        // Sometimes one is killed again at once: during its merge after the unclean stop, or its catch-up.
        if (rng.chance(0.3) && up.size >= 2) {
          const x = rng.pick(xs)
          up.delete(x)
          kills++
          steps.push({ t: 'kill', node: x, delayMs: rng.int(0, 400), power: rng.chance(0.3) })
        }
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
          kills++
          steps.push({ t: 'kill', node: x, delayMs: rng.int(0, 400), power: rng.chance(0.3) })
        }
        break
      }
      case 'pause': steps.push({ t: 'pause', ms: rng.int(50, 600) }); break
      case 'link': steps.push(link(`${id}/link-${s}`)); break
    }
  }
  // Every schedule has at least one kill point in a burst of writes...
  if (!steps.some(s => s.t === 'burst' && s.kill !== undefined)) {
    if (up.size < 2) {
      const x = rng.pick(nodes.filter(y => !up.has(y)))
      up.add(x)
      steps.push({ t: 'restart', nodes: [x] })
    }
    steps.push(burst(true))
  }
  // ...and a partition or a slow/lossy link somewhere.
  if (!steps.some(s => s.t === 'partition' || s.t === 'link')) steps.splice(rng.int(0, steps.length - 1), 0, link(`${id}/link-extra`))
  return { seed, index, id, nodes, volumes, solo, junk, chunkSize: 16 * 1024, steps }
}

/** The bytes of a planned put: unique per (plan, op), identical on every replay. */
export function contentOf (plan: Plan, op: PlannedOp): Buffer {
  const header = Buffer.from(`chaos ${plan.id} op ${op.id} ${op.path}\n`)
  if (op.size <= header.byteLength) return header.subarray(0, Math.max(op.size, 0))
  const key = createHash('sha256').update(`${plan.id}/${op.id}`).digest()
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32))
  return Buffer.concat([header, cipher.update(Buffer.alloc(op.size - header.byteLength)), cipher.final()])
}

const short = (v: string): string => v.replace(/^chaos-/, '')

function describeOp (o: PlannedOp): string {
  return `${o.kind === 'delete' ? 'del' : o.kind} ${short(o.volume)}:${o.path}${o.kind === 'put' ? ` ${o.size}B` : ''}`
}

function describeSide (s: SideOp): string {
  const at = `+${s.delayMs}ms`
  switch (s.t) {
    case 'member': return `${s.op}-replica ${short(s.volume)} ${s.node} ${at}`
    case 'gc': return `gc${s.repack ? '+repack' : ''} ${at}`
    default: return `${s.t} ${short(s.volume)} ${at}`
  }
}

export function describeStep (step: Step): string {
  switch (step.t) {
    case 'burst': {
      const w = step.writers.map(x => `${x.node}:${x.ops.map(describeOp).join(', ')}`).join(' | ')
      const k = step.kill !== undefined ? ` + ${step.kill.power ? 'power loss' : 'kill -9'} ${step.kill.node} after ${step.kill.afterAcks} acks +${step.kill.delayMs}ms` : ''
      return `writes [${w}]${step.side.length > 0 ? ` beside [${step.side.map(describeSide).join(', ')}]` : ''}${k}`
    }
    case 'partition': return `partition ${step.groups.map(g => `[${g.join(',')}]`).join(' ')}`
    case 'restart': return `restart ${step.nodes.join(',')}`
    case 'kill': return `${step.power ? 'power loss' : 'kill -9'} ${step.node} after ${step.delayMs}ms`
    case 'stop': return `stop ${step.node}`
    case 'heal': return 'heal'
    case 'recover': return 'recover (heal, fix links, restart every node that is down)'
    case 'pause': return `pause ${step.ms}ms`
    case 'link': return `link ${step.a}<->${step.b} delay ${step.delayMs}ms${step.bytesPerSecond !== null ? ` ${step.bytesPerSecond} B/s` : ''} loss ${step.dropRate}`
    case 'crash': return `crash ${step.node} at ${step.point}${step.op !== undefined ? ` (${describeOp(step.op)})` : ''}${step.junk !== undefined ? ` (junk ${step.junk} deleted first)` : ''}`
    case 'restore': return `restore solo dump on ${step.node}${step.crash ? ' + crash inside, restart, check, restore again' : ''}`
  }
}
