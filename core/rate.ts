/**
 * Rate and ETA of a count that grows (bytes copied, uploaded, written), from the first sample
 * on: what the CLI's progress bars and a move's progress (node/volume-move.ts) show.
 */
export interface RateEta { rate: number | null, etaSeconds: number | null }

/** Below this much time since the first sample there is no rate yet (a burst is no rate). */
const MIN_SECONDS = 0.5

export class RateMeter {
  private first: { done: number, at: number } | undefined
  private last = 0

  /** The rate since the first sample, and the seconds left to `total` at that rate. */
  sample (done: number, total?: number, now = Date.now()): RateEta {
    // A count that went back (a copy started over) starts the measure again.
    if (this.first === undefined || done < this.last) this.first = { done, at: now }
    this.last = done
    const secs = (now - this.first.at) / 1000
    const rate = secs >= MIN_SECONDS ? (done - this.first.done) / secs : null
    const etaSeconds = rate !== null && rate > 0 && total !== undefined ? Math.max(0, Math.ceil((total - done) / rate)) : null
    return { rate, etaSeconds }
  }
}
