/**
 * Chaos plans: a schedule of write bursts and faults planned entirely from (seed, index) by a
 * seeded PRNG before it runs: node count, paths, every write's node, path, size and bytes,
 * every fault, its target and its point (a kill fires once its node has acknowledged N
 * writes of the burst, plus a delay of D ms). Replaying a seed replays the same plan.
 */
import { createCipheriv, createHash } from 'node:crypto'
import { Rng } from './rng.js'

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
