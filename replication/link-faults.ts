import { ProtocolError, Codes } from '../core/errors.js'
import { Rng } from '../core/rng.js'

/** How the link to one peer misbehaves: a delay per reply, a bandwidth cap, a loss rate. */
export interface LinkShape {
  /** Added before each reply to that peer reaches it (ms). */
  delayMs: number
  /** Bytes per second of replies to that peer; null: no cap. */
  bytesPerSecond: number | null
  /** Chance (0-1) that a reply is lost: the stream carrying it is reset. */
  dropRate: number
}

/**
 * Slow and lossy links, simulated where libp2p's TCP transport offers no hook: in this node's
 * replies (index pages, chunk frames) to the peers named. A topology sets both ends, so both
 * directions of the pair are shaped. Replies to one peer share its bandwidth: they queue.
 * Losses are drawn from a PRNG seeded per link (the caller's seed, else the peer id), never from
 * Math.random: the n-th reply to a peer is lost or not the same way on every replay of a seed.
 */
export class LinkFaults {
  private readonly links = new Map<string, LinkShape & { nextFree: number, rng: Rng, seed: string }>()

  set (peers: string[], shape: Partial<LinkShape>, seed?: string): void {
    const s: LinkShape = { delayMs: shape.delayMs ?? 0, bytesPerSecond: shape.bytesPerSecond ?? null, dropRate: shape.dropRate ?? 0 }
    if (!(Number.isFinite(s.delayMs) && s.delayMs >= 0 && s.delayMs <= 60_000)) throw new RangeError('delayMs must be 0-60000')
    if (s.bytesPerSecond !== null && !(Number.isFinite(s.bytesPerSecond) && s.bytesPerSecond >= 1024)) throw new RangeError('bytesPerSecond must be at least 1024')
    if (!(s.dropRate >= 0 && s.dropRate <= 1)) throw new RangeError('dropRate must be 0-1')
    for (const p of peers) {
      const linkSeed = seed !== undefined ? `${seed}/${p}` : p
      this.links.set(p, { ...s, nextFree: 0, rng: new Rng(linkSeed), seed: linkSeed })
    }
  }

  /** Restores the links to `peers` (all of them without a list). */
  clear (peers?: string[]): void {
    if (peers === undefined) this.links.clear()
    else for (const p of peers) this.links.delete(p)
  }

  private announcesToLose = 0

  /**
   * The next `n` announces of a volume this node receives (ensure-volume requests, not the
   * probes of a change) are lost: answered as a request that got no answer in time.
   */
  loseAnnounces (n: number): void { this.announcesToLose = n }

  /** Throws TIMEOUT for an announce to lose (the control handler asks on every one). */
  announceReceived (probe: boolean): void {
    if (probe || this.announcesToLose <= 0) return
    this.announcesToLose--
    throw new ProtocolError(Codes.TIMEOUT, 'announce lost (simulated: links.loseAnnounces)')
  }

  list (): Record<string, LinkShape> {
    const out: Record<string, LinkShape> = {}
    for (const [p, { delayMs, bytesPerSecond, dropRate }] of [...this.links].sort(([a], [b]) => a.localeCompare(b))) out[p] = { delayMs, bytesPerSecond, dropRate }
    return out
  }

  /**
   * Waits as long as `bytes` of reply take to reach `peer` over its link, or throws
   * LINK_DROPPED when the link loses them. Immediate for peers with no fault set.
   */
  async pass (peer: string, bytes: number, signal?: AbortSignal): Promise<void> {
    const link = this.links.get(peer)
    if (link === undefined) return
    if (link.dropRate > 0 && link.rng.next() < link.dropRate) throw new ProtocolError(Codes.LINK_DROPPED, `reply to ${peer} lost (simulated lossy link)`)
    const now = Date.now()
    let until = now + link.delayMs
    if (link.bytesPerSecond !== null) {
      const start = Math.max(now, link.nextFree)
      link.nextFree = start + (bytes / link.bytesPerSecond) * 1000
      until = link.nextFree + link.delayMs
    }
    if (until <= now) return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, until - now)
      const onAbort = (): void => { clearTimeout(timer); reject((signal?.reason as Error | undefined) ?? new Error('aborted')) }
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}
