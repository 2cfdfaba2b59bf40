import type { Libp2p, PeerId } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { InvalidInputError, Codes } from '../core/errors.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { PeerRecord } from '../core/records.js'

const log = logger('peers')

const REDIAL_TICK_MS = 500
const BACKOFF_MIN_MS = 500
const BACKOFF_MAX_MS = 30_000
const DIAL_TIMEOUT_MS = 10_000
/** A peer that matters to no volume here and was not joined is forgotten this long after it was last seen... */
export const STRANGER_TTL_MS = 60 * 60_000
/** ...and at most this many such peers are remembered (the least recently seen go first). */
export const MAX_STRANGERS = 256
/** Store meta key: the peers given to --join or join(), redialled for good. */
const JOINED_KEY = 'joinedPeers'

interface DialState { backoff: number, next: number, dialing: boolean }

export interface PeerView { peerId: string, connected: boolean, addrs: string[], lastSeen: number | null, nextRedialInMs: number | null }

/**
 * Remembers the peers this node meets (in the store, with the addresses it listens on) and
 * redials the ones that matter and are not connected, with exponential backoff, so a restart
 * or a lost connection heals without an operator. A peer matters when it is a member of a
 * volume held here or was joined (--join, join()); any other peer that identified (a stranger)
 * is remembered for peer exchange only, never redialled, forgotten STRANGER_TTL_MS after it
 * was last seen, and at most MAX_STRANGERS of them are kept.
 */
export class PeerManager {
  private readonly dialState = new Map<string, DialState>()
  private timer: NodeJS.Timeout | undefined
  private readonly controller = new AbortController()
  private readonly joined = new Set<string>()
  /** When each peer that matters was first found to matter (this run): the never-seen clock. */
  private readonly wantedSince = new Map<string, number>()
  /** Peer records in the store after the last tick (status: `memory.knownPeers`). */
  knownPeers = 0
  /** Overridable by tests. */
  limits = { strangerTtlMs: STRANGER_TTL_MS, maxStrangers: MAX_STRANGERS }
  /**
   * @param blocked peers this node must not talk to (fault injection: a partition). The
   *   same set backs the connection gater, so they are neither dialled nor accepted.
   */
  constructor (private readonly libp2p: Libp2p, private readonly store: Store, readonly blocked: Set<string> = new Set()) {}

  /** Cuts this node off from `peers`: existing connections are closed, new ones refused both ways. */
  async block (peers: string[]): Promise<void> {
    for (const p of peers) this.blocked.add(p)
    await Promise.allSettled(peers.map(async p => { await this.libp2p.hangUp(peerIdFromString(p)) }))
  }

  /** Lifts a block (all blocks without arguments); the redial loop reconnects. */
  unblock (peers?: string[]): void {
    for (const p of peers ?? [...this.blocked]) {
      this.blocked.delete(p)
      this.dialState.delete(p)
    }
  }

  async start (join: string[]): Promise<void> {
    this.libp2p.addEventListener('peer:identify', (evt) => {
      const { peerId, listenAddrs } = evt.detail
      void this.remember(peerId, listenAddrs).catch((err: Error) => log.error('remember %p: %s', peerId, err.message))
    })
    this.libp2p.addEventListener('peer:connect', (evt) => {
      this.dialState.delete(evt.detail.toString())
    })
    for (const p of await this.store.getMeta<string[]>(JOINED_KEY) ?? []) this.joined.add(p)
    // Known peers go back into libp2p's (in-memory) peer store so dials by id find them.
    for (const peer of await this.store.listPeers()) {
      await this.libp2p.peerStore.merge(peerIdFromString(peer.peerId), { multiaddrs: peer.addrs.map(a => multiaddr(a)) })
        .catch((err: Error) => { log('peer store merge of %s: %s', peer.peerId, err.message) })
    }
    for (const addr of join) await this.join(addr)
    this.timer = setInterval(() => { void this.tick() }, REDIAL_TICK_MS)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.controller.abort()
  }

  /** Dials a multiaddr (which must end in /p2p/<peer id>) and remembers it even if the dial fails now. */
  async join (addr: string): Promise<void> {
    let ma: Multiaddr
    try {
      ma = multiaddr(addr)
    } catch (err) {
      throw new InvalidInputError(Codes.BAD_REQUEST, `not a multiaddr: ${addr} (${(err as Error).message})`)
    }
    const peer = ma.getComponents().find(c => c.name === 'p2p')?.value
    if (peer === undefined) throw new InvalidInputError(Codes.BAD_REQUEST, `multiaddr ${addr} must end with /p2p/<peer id>`)
    const transport = multiaddr(addr.slice(0, addr.lastIndexOf('/p2p/')))
    const existing = await this.store.getPeer(peer)
    const addrs = [...new Set([transport.toString(), ...(existing?.addrs ?? [])])]
    await this.store.putPeer({ peerId: peer, addrs, lastSeen: existing?.lastSeen ?? 0 })
    if (!this.joined.has(peer)) {
      this.joined.add(peer)
      await this.store.putMeta(JOINED_KEY, [...this.joined])
    }
    await this.libp2p.peerStore.merge(peerIdFromString(peer), { multiaddrs: [transport] })
      .catch((err: Error) => { log('peer store merge of %s: %s', peer, err.message) })
    try {
      await this.libp2p.dial(ma, { signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]) })
    } catch (err) {
      log('join %s failed for now (will retry): %s', addr, (err as Error).message)
    }
  }

  private async remember (peerId: PeerId, listenAddrs: Multiaddr[]): Promise<void> {
    if (!this.store.isOpen) return
    const id = peerId.toString()
    const existing = await this.store.getPeer(id)
    const fresh = listenAddrs.map(a => a.toString()).filter(a => !a.includes('/p2p-circuit'))
    const addrs = [...new Set([...fresh, ...(existing?.addrs ?? [])])].slice(0, 16)
    await this.store.putPeer({ peerId: id, addrs, lastSeen: Date.now() })
  }

  /** Adds addresses learnt from another peer (peer exchange). */
  async learn (peer: string, addrs: string[]): Promise<void> {
    if (peer === this.libp2p.peerId.toString() || addrs.length === 0 || !this.store.isOpen) return
    const existing = await this.store.getPeer(peer)
    const merged = [...new Set([...(existing?.addrs ?? []), ...addrs])].slice(0, 16)
    if (existing !== undefined && merged.length === existing.addrs.length) return
    await this.store.putPeer({ peerId: peer, addrs: merged, lastSeen: existing?.lastSeen ?? 0 })
    await this.libp2p.peerStore.merge(peerIdFromString(peer), { multiaddrs: merged.map(a => multiaddr(a)) })
      .catch((err: Error) => { log('peer store merge of %s: %s', peer, err.message) })
  }

  /** Addresses known for `peers` (for peer exchange). */
  async locate (peers: string[]): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {}
    for (const p of peers) {
      const rec = await this.store.getPeer(p)
      if (rec !== undefined && rec.addrs.length > 0) out[p] = rec.addrs
    }
    return out
  }

  /**
   * Connects to `peer` if it can: directly when its address is known, otherwise after asking
   * the connected peers where it is. Returns whether a connection exists afterwards.
   */
  async reach (peer: string, ask: (via: string, peers: string[]) => Promise<Record<string, string[]>>): Promise<boolean> {
    if (this.isConnected(peer)) return true
    if (this.blocked.has(peer)) return false
    const known = await this.store.getPeer(peer)
    if (known === undefined || known.addrs.length === 0) {
      for (const via of this.connectedPeers()) {
        const found = await ask(via, [peer]).catch((): Record<string, string[]> => ({}))
        if ((found[peer] ?? []).length > 0) { await this.learn(peer, found[peer]); break }
      }
    }
    try {
      await this.libp2p.dial(peerIdFromString(peer), { signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(5_000)]) })
      return true
    } catch (err) {
      log('reach %s: %s', peer, (err as Error).message)
      return false
    }
  }

  /**
   * How long a peer that matters (a member, a joined peer) has mattered without ever having
   * connected to this node (no identify, ever, in the store); undefined once it has connected,
   * or if it does not matter (yet: the clock starts at the first redial round that wants it).
   */
  async neverSeenForMs (peer: string): Promise<number | undefined> {
    const since = this.wantedSince.get(peer)
    if (since === undefined || this.isConnected(peer)) return undefined
    const rec = await this.store.getPeer(peer)
    if (rec !== undefined && rec.lastSeen > 0) return undefined
    return Date.now() - since
  }

  /** Whether the operator introduced `peer` (--join, join(); persisted). */
  isJoined (peer: string): boolean {
    return this.joined.has(peer)
  }

  isConnected (peer: string): boolean {
    return this.libp2p.getConnections(peerIdFromString(peer)).length > 0
  }

  connectedPeers (): string[] {
    return [...new Set(this.libp2p.getConnections().map(c => c.remotePeer.toString()))]
  }

  /** Peers that matter: joined ones and the other members of every volume held here. */
  private async wanted (): Promise<Set<string>> {
    const out = new Set(this.joined)
    for (const vol of await this.store.listVolumes()) if (vol.state !== 'removed') for (const m of vol.members) out.add(m)
    out.delete(this.libp2p.peerId.toString())
    return out
  }

  /** Forgets strangers seen too long ago, then the least recently seen beyond the cap. */
  private async prune (wanted: Set<string>, peers: PeerRecord[], now: number): Promise<void> {
    const strangers = peers.filter(p => !wanted.has(p.peerId) && !this.isConnected(p.peerId)).sort((a, b) => b.lastSeen - a.lastSeen)
    const gone = strangers.filter((p, i) => i >= this.limits.maxStrangers || now - p.lastSeen > this.limits.strangerTtlMs)
    for (const p of gone) {
      await this.store.deletePeer(p.peerId)
      this.dialState.delete(p.peerId)
      await this.libp2p.peerStore.delete(peerIdFromString(p.peerId)).catch((err: Error) => { log('peer store delete of %s: %s', p.peerId, err.message) })
    }
    if (gone.length > 0) log('forgot %d peer(s) no volume here needs', gone.length)
  }

  private async tick (): Promise<void> {
    if (!this.store.isOpen) return
    const now = Date.now()
    let peers: PeerRecord[]
    let wanted: Set<string>
    try {
      wanted = await this.wanted()
      await this.prune(wanted, await this.store.listPeers(), now)
      peers = await this.store.listPeers()
      this.knownPeers = peers.length
    } catch (err) {
      if (this.store.isOpen) log.error('redial round: %s', (err as Error).message)
      return
    }
    for (const p of wanted) if (!this.wantedSince.has(p)) this.wantedSince.set(p, now)
    for (const p of this.wantedSince.keys()) if (!wanted.has(p)) this.wantedSince.delete(p)
    for (const peer of peers) {
      if (!wanted.has(peer.peerId)) continue
      if (this.blocked.has(peer.peerId) || this.isConnected(peer.peerId) || peer.addrs.length === 0) continue
      const st = this.dialState.get(peer.peerId) ?? { backoff: BACKOFF_MIN_MS, next: 0, dialing: false }
      this.dialState.set(peer.peerId, st)
      if (st.dialing || st.next > now) continue
      st.dialing = true
      const id = peerIdFromString(peer.peerId)
      this.libp2p.dial(id, { signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]) })
        .then(() => { this.dialState.delete(peer.peerId); log('redialled %s', peer.peerId) })
        .catch((err: Error) => {
          st.dialing = false
          st.next = Date.now() + st.backoff
          st.backoff = Math.min(st.backoff * 2, BACKOFF_MAX_MS)
          log('redial %s failed, next in %d ms: %s', peer.peerId, st.backoff, err.message)
        })
    }
  }

  async list (): Promise<PeerView[]> {
    const known = await this.store.listPeers()
    const out = new Map<string, PeerView>()
    const now = Date.now()
    for (const p of known) {
      const st = this.dialState.get(p.peerId)
      out.set(p.peerId, {
        peerId: p.peerId, connected: this.isConnected(p.peerId), addrs: p.addrs, lastSeen: p.lastSeen === 0 ? null : p.lastSeen,
        nextRedialInMs: st !== undefined && !st.dialing ? Math.max(0, st.next - now) : null
      })
    }
    for (const peer of this.connectedPeers()) {
      if (!out.has(peer)) out.set(peer, { peerId: peer, connected: true, addrs: [], lastSeen: now, nextRedialInMs: null })
    }
    return [...out.values()]
  }
}
