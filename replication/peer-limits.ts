import { ThrottledError } from '../core/errors.js'
import { logger } from '../core/log.js'
import type { RequestGate } from '../protocols/sources.js'

const log = logger('limits')

/**
 * Per-peer limits on what a peer may ask of this node (issue 14).
 *
 * - Requests: a token bucket per peer, refilled at `rate` per second up to `burst`. A peer
 *   starts with the stranger bucket; when it runs dry, whether the peer matters (a member of
 *   a volume held here, or joined by the operator) is asked once (cached `trustTtlMs`) and a
 *   peer that matters gets the member bucket. An empty bucket refuses with THROTTLED.
 * - Replies in flight: a handler reserves the bytes it reads for a peer before it reads them
 *   and gives them back once they are handed to the stream; past `bytesInFlight` the next
 *   reservation waits (at most MAX_WAITERS per peer wait; more are refused).
 * - Strikes: every refusal, and every broken request (bad frame, over-long want-list) of a
 *   peer not known to matter, is a strike; `strikesToBan` strikes within `strikeWindowMs` ban the peer: it is disconnected
 *   and the connection gater refuses it (both ways) for `banMs`, doubled at every new ban up
 *   to `maxBanMs`.
 * - Every map is bounded: `maxTracked` peers (the least recently active idle one goes first),
 *   `maxBanned` bans (the one that ends first goes first). Status lists at most MAX_LISTED.
 */
export interface Bucket { rate: number, burst: number }

export interface LimitOptions {
  member: Bucket
  stranger: Bucket
  bytesInFlight: number
  strikesToBan: number
  strikeWindowMs: number
  banMs: number
  maxBanMs: number
  maxTracked: number
  maxBanned: number
  /** How long a peer found not to matter is not asked again (a stranger's flood must not cost a lookup per request). */
  trustTtlMs: number
}

/**
 * Generous for members: a pull keeps CHUNK_REQUESTS_IN_FLIGHT want-lists open, a wannabe's copy
 * and on-demand reads add theirs, and every commit sends a notice; a few hundred requests a
 * second between two members is normal, 2,000 with bursts of 4,000 is not reached in practice.
 */
export const DEFAULT_LIMITS: LimitOptions = {
  member: { rate: 2000, burst: 4000 },
  stranger: { rate: 20, burst: 40 },
  bytesInFlight: 64 * 1024 * 1024,
  strikesToBan: 100,
  strikeWindowMs: 10_000,
  banMs: 60_000,
  maxBanMs: 15 * 60_000,
  maxTracked: 1024,
  maxBanned: 256,
  trustTtlMs: 2_000
}

const MAX_WAITERS = 64
const MAX_LISTED = 64
/** A throttled peer stays listed this long after its last refusal. */
const LISTED_MS = 60_000

/** One throttled or banned peer, as status shows it. */
export interface ThrottledPeer {
  peer: string
  /** When its current run of refusals began. */
  since: number
  reason: string
  /** Requests admitted and refused since it was first tracked (this run). */
  admitted: number
  refused: number
  banned: boolean
  /** While banned: when the gater lets it in again. */
  bannedUntil?: number
  bans: number
}

interface Waiter { bytes: number, resolve: () => void, reject: (err: Error) => void }

interface PeerEntry {
  tokens: number
  refilledAt: number
  trusted: boolean
  trustCheckedAt: number
  /** The trust check under way: requests arriving meanwhile wait for it instead of being refused. */
  trustCheck?: Promise<void>
  strikes: number
  strikesFrom: number
  admitted: number
  refused: number
  throttledSince?: number
  lastRefusal?: number
  reason?: string
  inFlight: number
  waiters: Waiter[]
}

interface Ban { until: number, bans: number, since: number, reason: string }

export interface LimitDeps {
  /** Whether `peer` is a member of a volume held here or was joined by the operator. */
  matters: (peer: string) => Promise<boolean>
  /** Closes every connection to `peer` (a ban). */
  disconnect: (peer: string) => Promise<void>
}

/** The per-peer gate every protocol handler passes its requests through; also the ban list the connection gater reads. */
export class PeerLimits implements RequestGate {
  readonly opts: LimitOptions
  private readonly peers = new Map<string, PeerEntry>()
  private readonly bans = new Map<string, Ban>()
  private deps: LimitDeps | undefined
  /** Since start: requests refused (THROTTLED) and bans imposed (the metrics count them). */
  readonly totals = { refused: 0, bans: 0 }

  constructor (opts: Partial<LimitOptions> = {}) {
    this.opts = { ...DEFAULT_LIMITS, ...opts }
  }

  /** Gives the limits what they ask of the node (built before libp2p: the gater needs isBanned). */
  attach (deps: LimitDeps): void {
    this.deps = deps
  }

  isBanned (peer: string): boolean {
    const ban = this.bans.get(peer)
    return ban !== undefined && ban.until > Date.now()
  }

  async admit (peer: string, protocol: string): Promise<void> {
    if (this.isBanned(peer)) throw this.refuse(peer, this.entry(peer), 'banned')
    const e = this.entry(peer)
    const now = Date.now()
    this.refill(e, now)
    if (e.tokens < 1 && !e.trusted) {
      if (e.trustCheck === undefined && now - e.trustCheckedAt > this.opts.trustTtlMs) {
        e.trustCheckedAt = now
        e.trustCheck = (this.deps?.matters(peer) ?? Promise.resolve(false)).catch(() => false).then(trusted => {
          e.trusted = trusted
          if (trusted) e.tokens = this.opts.member.burst
        }).finally(() => { e.trustCheck = undefined })
      }
      // A member's parallel want-lists empty the stranger bucket together: all wait for the one check.
      if (e.trustCheck !== undefined) await e.trustCheck
    }
    if (e.tokens < 1) throw this.refuse(peer, e, `over ${this.bucket(e).rate} requests/s (${protocol})`)
    e.tokens--
    e.admitted++
  }

  /**
   * A configuration listing these peers was committed, adopted or created here: a peer judged
   * a stranger a moment ago (a wannabe connects before it is added) must not wait out
   * `trustTtlMs` at the stranger rate, or its first reads are refused.
   */
  reconsider (peers: readonly string[]): void {
    for (const p of peers) {
      const e = this.peers.get(p)
      if (e !== undefined && !e.trusted) e.trustCheckedAt = 0
    }
  }

  async reserve (peer: string, bytes: number, signal?: AbortSignal): Promise<() => void> {
    const e = this.entry(peer)
    // One reply bigger than the whole budget still goes, alone.
    const n = Math.min(bytes, this.opts.bytesInFlight)
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      e.inFlight -= n
      this.pump(e)
    }
    if (e.waiters.length === 0 && e.inFlight + n <= this.opts.bytesInFlight) {
      e.inFlight += n
      return release
    }
    if (e.waiters.length >= MAX_WAITERS) throw this.refuse(peer, e, `over ${this.opts.bytesInFlight} reply bytes in flight`)
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        bytes: n,
        resolve: () => { signal?.removeEventListener('abort', onAbort); resolve() },
        reject
      }
      const onAbort = (): void => {
        const i = e.waiters.indexOf(waiter)
        if (i >= 0) e.waiters.splice(i, 1)
        reject(new ThrottledError('gave up waiting for reply bytes in flight'))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      e.waiters.push(waiter)
    })
    return release
  }

  misbehaved (peer: string, reason: string): void {
    const e = this.entry(peer)
    // A member's bad requests cost it only its rate: a bug on a member must not cut a volume off.
    if (!e.trusted) this.strike(peer, e, reason)
  }

  /** Throttled and banned peers for status, most recent first, at most MAX_LISTED. */
  throttled (): ThrottledPeer[] {
    const now = Date.now()
    const out = new Map<string, ThrottledPeer>()
    for (const [peer, e] of this.peers) {
      if (e.throttledSince === undefined || now - (e.lastRefusal ?? 0) > LISTED_MS) continue
      out.set(peer, { peer, since: e.throttledSince, reason: e.reason ?? '', admitted: e.admitted, refused: e.refused, banned: false, bans: 0 })
    }
    for (const [peer, ban] of this.bans) {
      if (ban.until <= now) continue
      const e = this.peers.get(peer)
      out.set(peer, { peer, since: ban.since, reason: ban.reason, admitted: e?.admitted ?? 0, refused: e?.refused ?? 0, banned: true, bannedUntil: ban.until, bans: ban.bans })
    }
    return [...out.values()].sort((a, b) => b.since - a.since).slice(0, MAX_LISTED)
  }

  /** Peers tracked and bans held (status `memory`). */
  get size (): { tracked: number, banned: number } { return { tracked: this.peers.size, banned: this.bans.size } }

  private bucket (e: PeerEntry): Bucket { return e.trusted ? this.opts.member : this.opts.stranger }

  private refill (e: PeerEntry, now: number): void {
    const b = this.bucket(e)
    e.tokens = Math.min(b.burst, e.tokens + (now - e.refilledAt) * b.rate / 1000)
    e.refilledAt = now
  }

  private entry (peer: string): PeerEntry {
    let e = this.peers.get(peer)
    if (e !== undefined) {
      // Most recently active last: eviction takes the first idle one.
      this.peers.delete(peer)
      this.peers.set(peer, e)
      return e
    }
    if (this.peers.size >= this.opts.maxTracked) {
      for (const [p, old] of this.peers) {
        if (old.inFlight === 0 && old.waiters.length === 0) { this.peers.delete(p); break }
      }
    }
    const now = Date.now()
    e = { tokens: this.opts.stranger.burst, refilledAt: now, trusted: false, trustCheckedAt: 0, strikes: 0, strikesFrom: now, admitted: 0, refused: 0, inFlight: 0, waiters: [] }
    // Every tracked peer is busy (all have replies in flight): this one is not tracked, and so
    // gets a fresh stranger bucket each time, which strikes still catch through `bans`.
    if (this.peers.size < this.opts.maxTracked) this.peers.set(peer, e)
    return e
  }

  private refuse (peer: string, e: PeerEntry, reason: string): ThrottledError {
    const now = Date.now()
    if (e.throttledSince === undefined || now - (e.lastRefusal ?? 0) > LISTED_MS) e.throttledSince = now
    e.lastRefusal = now
    e.refused++
    this.totals.refused++
    e.reason = reason
    this.strike(peer, e, reason)
    return new ThrottledError(`peer ${peer} throttled: ${reason}`)
  }

  private strike (peer: string, e: PeerEntry, reason: string): void {
    const now = Date.now()
    if (now - e.strikesFrom > this.opts.strikeWindowMs) { e.strikes = 0; e.strikesFrom = now }
    e.strikes++
    if (e.strikes < this.opts.strikesToBan || this.isBanned(peer)) return
    e.strikes = 0
    this.ban(peer, reason, now)
  }

  private ban (peer: string, reason: string, now: number): void {
    const prev = this.bans.get(peer)
    const bans = (prev?.bans ?? 0) + 1
    this.totals.bans++
    const ms = Math.min(this.opts.maxBanMs, this.opts.banMs * 2 ** (bans - 1))
    this.bans.delete(peer)
    if (this.bans.size >= this.opts.maxBanned) {
      let first: [string, Ban] | undefined
      for (const b of this.bans) if (first === undefined || b[1].until < first[1].until) first = b
      if (first !== undefined) this.bans.delete(first[0])
    }
    this.bans.set(peer, { until: now + ms, bans, since: now, reason })
    log('banned %s for %d ms: %s', peer, ms, reason)
    void this.deps?.disconnect(peer).catch((err: Error) => { log('disconnect of %s: %s', peer, err.message) })
  }

  private pump (e: PeerEntry): void {
    while (e.waiters.length > 0 && (e.inFlight === 0 || e.inFlight + e.waiters[0].bytes <= this.opts.bytesInFlight)) {
      const w = e.waiters.shift()!
      e.inFlight += w.bytes
      w.resolve()
    }
  }
}
