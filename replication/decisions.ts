export interface DecisionView { peer: string, decision: string, why: string, at: number }

/** The last catch-up decision taken about each (volume, member), for status. */
export class Decisions {
  private readonly latest = new Map<string, DecisionView>()

  record (volume: string, peer: string, decision: string, why: string): void {
    this.latest.set(`${volume}\x00${peer}`, { peer, decision, why, at: Date.now() })
  }

  forVolume (volume: string): DecisionView[] {
    return [...this.latest.entries()].filter(([k]) => k.startsWith(`${volume}\x00`)).map(([, v]) => v)
  }
}
