/** What this node last heard from each other member of a volume: its state, generation and log head. */
export class RemoteViews {
  private readonly states = new Map<string, { state: string, generation: number | null }>()
  private readonly heads = new Map<string, number>()

  /** Entries held (states and heads): what status shows as `memory.notices`. */
  get size (): number { return this.states.size + this.heads.size }

  /** A member's report of its state (and, with `seq`, of its change-log head). */
  set (volume: string, peer: string, state: string, generation: number | null, seq?: number): void {
    this.states.set(`${volume}\x00${peer}`, { state, generation })
    if (seq !== undefined) this.heads.set(`${volume}\x00${peer}`, seq)
  }

  setHead (volume: string, peer: string, seq: number): void {
    this.heads.set(`${volume}\x00${peer}`, seq)
  }

  /** Forgets the state heard (not the head): the member is new to the volume, or gone from it. */
  forget (volume: string, peer: string): void {
    this.states.delete(`${volume}\x00${peer}`)
  }

  stateOf (volume: string, peer: string): { state: string, generation: number | null } | undefined {
    return this.states.get(`${volume}\x00${peer}`)
  }

  headOf (volume: string, peer: string): number | undefined {
    return this.heads.get(`${volume}\x00${peer}`)
  }
}
