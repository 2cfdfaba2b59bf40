const MAX_CONNECTION_STAMPS = 4096

/**
 * What this node last heard from each other member of a volume: its state, generation and log
 * head. Heads are stamped with a counter, and so is each new connection to a member, so that
 * a head heard before the member's current connection (it may have moved on meanwhile) is
 * known to be stale: "caught up" is only claimed against a head heard on this connection.
 */
export class RemoteViews {
  private readonly states = new Map<string, { state: string, generation: number | null }>()
  private readonly heads = new Map<string, { seq: number, heard: number }>()
  private readonly connections = new Map<string, number>()
  private clock = 0

  /** Entries held (states and heads): what status shows as `memory.notices`. */
  get size (): number { return this.states.size + this.heads.size }

  /** A member's report of its state (and, with `seq`, of its change-log head). */
  set (volume: string, peer: string, state: string, generation: number | null, seq?: number): void {
    this.states.set(`${volume}\x00${peer}`, { state, generation })
    if (seq !== undefined) this.setHead(volume, peer, seq)
  }

  setHead (volume: string, peer: string, seq: number): void {
    this.heads.set(`${volume}\x00${peer}`, { seq, heard: ++this.clock })
  }

  /**
   * A new connection to `peer`: heads heard before it are stale from now on. Every peer that
   * connects passes here (strangers too), so at most MAX_CONNECTION_STAMPS are kept: the
   * oldest stamp goes, with the heads of its peer (which then count as not heard).
   */
  connected (peer: string): void {
    this.connections.delete(peer)
    this.connections.set(peer, ++this.clock)
    if (this.connections.size <= MAX_CONNECTION_STAMPS) return
    const oldest = this.connections.keys().next().value!
    this.connections.delete(oldest)
    for (const key of this.heads.keys()) if (key.endsWith(`\x00${oldest}`)) this.heads.delete(key)
  }

  /** Forgets the state heard (not the head): the member is new to the volume, or gone from it. */
  forget (volume: string, peer: string): void {
    this.states.delete(`${volume}\x00${peer}`)
  }

  stateOf (volume: string, peer: string): { state: string, generation: number | null } | undefined {
    return this.states.get(`${volume}\x00${peer}`)
  }

  headOf (volume: string, peer: string): number | undefined {
    return this.heads.get(`${volume}\x00${peer}`)?.seq
  }

  /** The head heard from `peer` since its current connection began (undefined: none yet). */
  freshHeadOf (volume: string, peer: string): number | undefined {
    const h = this.heads.get(`${volume}\x00${peer}`)
    return h !== undefined && h.heard > (this.connections.get(peer) ?? 0) ? h.seq : undefined
  }
}
