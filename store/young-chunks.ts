import { hashHex } from '../core/hash.js'
import type { PutObserver } from './chunk-store.js'

/** GC's default young window: chunks written or touched this recently are never collected. */
export const DEFAULT_YOUNG_MS = 10 * 60_000
/** Most chunks remembered: beyond it the oldest are forgotten first (about 150 B each). */
export const MAX_YOUNG_CHUNKS = 500_000

export interface YoungChunksOptions {
  /** How long an entry is kept: at least GC's young window (default DEFAULT_YOUNG_MS). */
  retainMs?: number
  max?: number
  /** Clock (tests). */
  now?: () => number
}

/**
 * Chunks written (or found already stored) by this process and not yet collectable: a put or
 * fetch whose index batch has not landed yet references chunks no record names so far. The
 * chunk store reports its puts through `onPut`; writers that reuse stored chunks touch them.
 *
 * Entries only need to outlive GC's young window, so they age out as new ones come (the map is
 * kept in the order of last use, oldest first) and their number is capped: a node that writes
 * for weeks without a gc holds no more than the last `retainMs` of chunks.
 */
export class YoungChunks {
  /** hex -> when last written or touched, oldest first. */
  private readonly at = new Map<string, number>()
  private readonly retainMs: number
  private readonly max: number
  private readonly now: () => number

  constructor (opts: YoungChunksOptions = {}) {
    this.retainMs = opts.retainMs ?? DEFAULT_YOUNG_MS
    this.max = opts.max ?? MAX_YOUNG_CHUNKS
    this.now = opts.now ?? Date.now
  }

  get size (): number { return this.at.size }

  /** Given to the chunk store when it is built: every putMany marks its chunks first. */
  readonly onPut: PutObserver = (chunks) => {
    this.mark(chunks.map(c => c.hash))
  }

  /** Marks chunks as in use by a write in progress (found already stored, so not rewritten). */
  touch (hashes: Uint8Array[]): void {
    this.mark(hashes)
  }

  private mark (hashes: ReadonlyArray<Uint8Array>): void {
    const now = this.now()
    for (const h of hashes) {
      const hex = hashHex(h)
      // Re-inserted, so that the map stays ordered by last use.
      this.at.delete(hex)
      this.at.set(hex, now)
    }
    for (const [hex, at] of this.at) {
      if (now - at < this.retainMs && this.at.size <= this.max) break
      this.at.delete(hex)
    }
  }

  has (hex: string): boolean {
    return this.at.has(hex)
  }

  /** Adds the chunks younger than `youngMs` to `into`, and forgets the older ones (GC may take them). */
  addYoung (into: Set<string>, youngMs: number): void {
    const now = this.now()
    for (const [hex, at] of this.at) {
      if (now - at < youngMs) into.add(hex)
      else this.at.delete(hex)
    }
  }
}
