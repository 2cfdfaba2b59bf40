/**
 * The network faults in force on a topology, kept here so they can be applied again to a node
 * that restarts: partitions (groups that refuse each other, through the nodes' connection
 * gaters) and slow or lossy links. Applied through each node's fault routes (/v1/faults/*),
 * which answer only on nodes started with testing on.
 */
import { Codes } from '../core/errors.js'
import type { LinkShape } from '../replication/link-faults.js'
import { TopologyError } from './topology-error.js'
import type { ManagedNode } from './managed-node.js'

/** The topology's nodes, as the faults need them. */
export interface FaultTargets {
  /** The node of that name (throws UNKNOWN_NODE if there is none). */
  managed: (name: string) => ManagedNode
  /** Every node, in topology order. */
  all: () => ManagedNode[]
}

export class TopologyFaults {
  private groups: string[][] = []
  /** Slow or lossy links in force, per pair of node names (both ends shaped). */
  private readonly shapedLinks = new Map<string, { a: string, b: string, shape: Partial<LinkShape>, seed?: string }>()

  constructor (private readonly nodes: FaultTargets) {}

  private running (): ManagedNode[] { return this.nodes.all().filter(n => n.running) }

  /** Peer ids `name` must refuse under the current partition. */
  blockedFor (name: string): string[] {
    const mine = this.groups.find(g => g.includes(name))
    if (mine === undefined) return []
    return this.groups.filter(g => g !== mine).flat().map(n => this.nodes.managed(n).peerId)
  }

  /**
   * Applies the faults in force to `n`, just restarted: its partition blocks, then its shaped
   * links. Returns how many peers it now refuses.
   */
  async reapply (n: ManagedNode): Promise<number> {
    const blocked = this.blockedFor(n.name)
    if (blocked.length > 0) await n.client.block(blocked)
    for (const { a, b, shape, seed } of this.shapedLinks.values()) {
      // Reseeded from the same seed: the restarted end's losses start that sequence again.
      if (a === n.name || b === n.name) await n.client.slowLink([this.nodes.managed(a === n.name ? b : a).peerId], shape, seed === undefined ? undefined : `${seed}/${n.name}`)
    }
    return blocked.length
  }

  /** Replaces the partition in force; every running node of a group refuses the other groups. */
  async partition (groups: string[][]): Promise<void> {
    const seen = new Set<string>()
    for (const g of groups) {
      for (const n of g) {
        this.nodes.managed(n)
        if (seen.has(n)) throw new TopologyError(Codes.BAD_TOPOLOGY, `node ${n} is in two groups of a partition`)
        seen.add(n)
      }
    }
    const before = new Map(this.nodes.all().map(n => [n.name, this.blockedFor(n.name)]))
    this.groups = groups.filter(g => g.length > 0).map(g => [...g])
    const running = this.running()
    // Block first, then lift what the new partition no longer blocks: no window in between.
    await Promise.all(running.map(async n => {
      const want = this.blockedFor(n.name)
      if (want.length > 0) await n.client.block(want)
    }))
    await Promise.all(running.map(async n => {
      const want = new Set(this.blockedFor(n.name))
      const lift = (before.get(n.name) ?? []).filter(p => !want.has(p))
      if (lift.length > 0) await n.client.unblock(lift)
    }))
  }

  async heal (): Promise<void> {
    this.groups = []
    await Promise.all(this.running().map(async n => { await n.client.unblock() }))
  }

  /** The partition in force (groups of node names; empty when healed). */
  partitions (): string[][] { return this.groups.map(g => [...g]) }

  /** `seed` drives the link's losses (each end draws from `${seed}/${its name}`). */
  async slowLink (a: string, b: string, shape: Partial<LinkShape>, seed?: string): Promise<void> {
    const [na, nb] = [this.nodes.managed(a), this.nodes.managed(b)]
    if (a === b) throw new TopologyError(Codes.BAD_TOPOLOGY, 'a link joins two different nodes')
    this.shapedLinks.set([a, b].sort().join('\0'), { a, b, shape: { ...shape }, ...(seed !== undefined ? { seed } : {}) })
    await Promise.all([[na, nb], [nb, na]].filter(([n]) => n.running).map(async ([n, other]) => { await n.client.slowLink([other.peerId], shape, seed === undefined ? undefined : `${seed}/${n.name}`) }))
  }

  async fixLinks (): Promise<void> {
    this.shapedLinks.clear()
    await Promise.all(this.running().map(async n => { await n.client.fixLinks() }))
  }
}
