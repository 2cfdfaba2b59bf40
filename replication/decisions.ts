export interface DecisionView { peer: string, decision: string, why: string, at: number }

/** A membership change accepted or refused here, and who proposed it. */
export interface ChangeView { proposer: string, outcome: 'accepted' | 'refused', what: string, at: number }

const CHANGES_KEPT = 32
// Strangers can make refusals about any volume name: keep the table bounded.
const DECISIONS_KEPT = 1024

/** The last catch-up decision taken about each (volume, member), and the recent membership changes, for status. */
export class Decisions {
  private readonly latest = new Map<string, DecisionView>()
  private readonly changes = new Map<string, ChangeView[]>()

  record (volume: string, peer: string, decision: string, why: string): void {
    const key = `${volume}\x00${peer}`
    this.latest.delete(key)
    this.latest.set(key, { peer, decision, why, at: Date.now() })
    if (this.latest.size > DECISIONS_KEPT) this.latest.delete(this.latest.keys().next().value!)
  }

  forVolume (volume: string): DecisionView[] {
    return [...this.latest.entries()].filter(([k]) => k.startsWith(`${volume}\x00`)).map(([, v]) => v)
  }

  change (volume: string, proposer: string, outcome: ChangeView['outcome'], what: string): void {
    const list = this.changes.get(volume) ?? []
    list.push({ proposer, outcome, what, at: Date.now() })
    if (list.length > CHANGES_KEPT) list.shift()
    this.changes.delete(volume)
    this.changes.set(volume, list)
    if (this.changes.size > DECISIONS_KEPT) this.changes.delete(this.changes.keys().next().value!)
  }

  changesFor (volume: string): ChangeView[] {
    return [...(this.changes.get(volume) ?? [])]
  }
}
