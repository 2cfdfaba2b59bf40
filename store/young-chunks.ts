import { hashHex } from '../core/hash.js'
import type { PutObserver } from './chunk-store.js'

/**
 * Chunks written (or found already stored) by this process and not yet collectable: a put or
 * fetch whose index batch has not landed yet references chunks no record names so far. The
 * chunk store reports its puts through `onPut`; writers that reuse stored chunks touch them.
 */
export class YoungChunks {
  /** hex -> when last written or touched. */
  private readonly at = new Map<string, number>()

  /** Given to the chunk store when it is built: every putMany marks its chunks first. */
  readonly onPut: PutObserver = (chunks) => {
    const now = Date.now()
    for (const c of chunks) this.at.set(hashHex(c.hash), now)
  }

  /** Marks chunks as in use by a write in progress (found already stored, so not rewritten). */
  touch (hashes: Uint8Array[]): void {
    const now = Date.now()
    for (const h of hashes) this.at.set(hashHex(h), now)
  }

  has (hex: string): boolean {
    return this.at.has(hex)
  }

  /** Adds the chunks younger than `youngMs` to `into`, and forgets the older ones. */
  addYoung (into: Set<string>, youngMs: number): void {
    const now = Date.now()
    for (const [hex, at] of this.at) {
      if (now - at < youngMs) into.add(hex)
      else this.at.delete(hex)
    }
  }
}
