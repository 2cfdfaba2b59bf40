import type { Libp2p, PeerId } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { InvalidInputError, Codes } from '../core/errors.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import { holds, type PeerRecord } from '../core/records.js'
import { requestLocate } from '../protocols/control-protocol.js'
import { VolumeLinks } from './volume-links.js'

const log = logger('peers')

const REDIAL_TICK_MS = 500
const BACKOFF_MIN_MS = 500
const BACKOFF_MAX_MS = 30_000
const DIAL_TIMEOUT_MS = 10_000
/**
 * A stranger (no member of a volume here, not joined) that identified is remembered in memory
 * only, this long after it was last seen (add-replica's "has this node seen it")...
 */
export const STRANGER_TTL_MS = 60 * 60_000
/** ...and at most this many of them (the least recently seen go first). */
export const MAX_STRANGERS = 256
/** Addresses kept (and so dialled) per peer: a peer cannot aim this node's dials at many hosts. */
export const MAX_ADDRS_PER_PEER = 4
/** Store meta key: the peers given to --join or join(), redialled for good. */
const JOINED_KEY = 'joinedPeers'

export interface DiscoveryOptions {
  /**
   * Multiaddrs (ending in /p2p/<id>) dialled to get into the swarm (`--bootstrap`), at start
   * and whenever no peer is connected; never stored. The members of the volumes held here are
   * then found through the peers connected (volume-links.ts): a node that knows one peer needs no other.
   */
  bootstrap?: string[]
  /** Fellow readers a reader of a volume keeps connected (`--fanout`, default 6). */
  fanout?: number
}

interface DialState { backoff: number, next: number, dialing: boolean }
interface Sighting { lastSeen: number, addrs: string[] }

export interface PeerView { peerId: string, connected: boolean, addrs: string[], lastSeen: number | null, nextRedialInMs: number | null }

/**
 * Remembers the peers that matter (in the store, with at most MAX_ADDRS_PER_PEER addresses
 * they listen on) and redials the ones not connected, with exponential backoff, so a restart
 * or a lost connection heals without an operator. A peer matters when it is a member of a
 * volume held here or was joined (--join, join()). Any other peer that identified (a stranger)
 * is never persisted, never dialled and never told about: it is remembered in memory only (so
 * an operator may add it as a replica), forgotten STRANGER_TTL_MS after it was last seen, at
 * most MAX_STRANGERS of them; once disconnected it is dropped from libp2p's peer store too.
 */
export class PeerManager {
  private readonly dialState = new Map<string, DialState>()
  private timer: NodeJS.Timeout | undefined
  private readonly controller = new AbortController()
  private readonly joined = new Set<string>()
  /** When each peer that matters was first found to matter (this run): the never-seen clock. */
  private readonly wantedSince = new Map<string, number>()
  /** Strangers seen (this run, memory only), least recently seen first. */
  private readonly strangers = new Map<string, Sighting>()
  /** Peer records in the store after the last tick (status: `memory.knownPeers`). */
  knownPeers = 0
  /** Strangers remembered in memory (status: `memory.strangers`). */
  get strangersSeen (): number { return this.strangers.size }
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

  /** Bootstrap multiaddrs (`--bootstrap`): dialled at start and whenever no peer is connected; never stored. */
  private bootstrap: string[] = []; private readonly bootstrapState: DialState = { backoff: BACKOFF_MIN_MS, next: 0, dialing: false }
  private links: VolumeLinks | undefined

  /** @param join dialled, stored and redialled for good (--join) */
  async start (join: string[], { bootstrap = [], fanout }: DiscoveryOptions = {}): Promise<void> {
    this.bootstrap = bootstrap.map(a => checkedAddr(a).toString())
    this.links = new VolumeLinks({
      selfId: this.libp2p.peerId.toString(),
      listVolumes: async () => await this.store.listVolumes(),
      isConnected: p => this.isConnected(p) || this.blocked.has(p),
      reach: async p => await this.reach(p, async (via, ps) => await requestLocate(this.libp2p, peerIdFromString(via), ps, AbortSignal.timeout(5_000))),
      ...(fanout !== undefined ? { fanout } : {})
    })
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
      await this.libp2p.peerStore.merge(peerIdFromString(peer.peerId), { multiaddrs: peer.addrs.slice(0, MAX_ADDRS_PER_PEER).map(a => multiaddr(a)) })
        .catch((err: Error) => { log('peer store merge of %s: %s', peer.peerId, err.message) })
    }
    for (const addr of join) await this.join(addr)
    await this.dialBootstrap()
    this.timer = setInterval(() => { void this.tick() }, REDIAL_TICK_MS)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.controller.abort()
  }

  /** Dials every bootstrap address (with backoff while none answers). */
  private async dialBootstrap (): Promise<void> {
    const st = this.bootstrapState
    if (this.bootstrap.length === 0 || st.dialing || st.next > Date.now()) return
    st.dialing = true
    const results = await Promise.allSettled(this.bootstrap.map(async a => await this.libp2p.dial(multiaddr(a), { signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]) })))
    st.dialing = false
    if (results.some(r => r.status === 'fulfilled')) { st.backoff = BACKOFF_MIN_MS; st.next = 0; return }
    st.next = Date.now() + st.backoff
    st.backoff = Math.min(st.backoff * 2, BACKOFF_MAX_MS)
    log('no bootstrap peer answered (next try in %d ms)', st.backoff)
  }

  /** Dials a multiaddr (which must end in /p2p/<peer id>) and remembers it even if the dial fails now. */
  async join (addr: string): Promise<void> {
    const ma = checkedAddr(addr)
    const peer = ma.getComponents().find(c => c.name === 'p2p')!.value!
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
    const fresh = listenAddrs.map(a => a.toString()).filter(a => !a.includes('/p2p-circuit') && a.length <= 256)
    const addrs = [...new Set([...fresh, ...(existing?.addrs ?? [])])].slice(0, MAX_ADDRS_PER_PEER)
    // Identify put every address the peer announced in libp2p's peer store: keep the few we
    // would dial (libp2p refuses to dial a peer with more than maxPeerAddrsToDial at all).
    await this.libp2p.peerStore.patch(peerId, { multiaddrs: addrs.map(a => multiaddr(a)) })
      .catch((err: Error) => { log('peer store patch of %s: %s', id, err.message) })
    if (!await this.matters(id)) { this.sighted(id, fresh, Date.now()); return }
    this.strangers.delete(id)
    await this.store.putPeer({ peerId: id, addrs, lastSeen: Date.now() })
  }

  /** Remembers a stranger in memory only (most recent last, at most maxStrangers). */
  private sighted (peer: string, addrs: string[], lastSeen: number): void {
    const prev = this.strangers.get(peer)
    this.strangers.delete(peer)
    this.strangers.set(peer, { lastSeen: Math.max(lastSeen, prev?.lastSeen ?? 0), addrs: [...new Set([...addrs, ...(prev?.addrs ?? [])])].slice(0, MAX_ADDRS_PER_PEER) })
    if (this.strangers.size > this.limits.maxStrangers) this.strangers.delete(this.strangers.keys().next().value!)
  }

  /** A stranger that came to matter (added as a member after it connected): its record is stored now. */
  private async promote (peer: string): Promise<void> {
    const seen = this.strangers.get(peer)
    if (seen === undefined) return
    this.strangers.delete(peer)
    await this.store.putPeer({ peerId: peer, addrs: seen.addrs, lastSeen: seen.lastSeen })
  }

  /** Whether `peer` is a member of a volume held here or was joined: only those are persisted, dialled and located. */
  async matters (peer: string): Promise<boolean> {
    if (this.joined.has(peer)) return true
    return (await this.store.listVolumes()).some(v => v.state !== 'removed' && holds(v, peer)) // readers too: they read as much as a wannabe
  }

  /** A stranger this node saw (identified) within STRANGER_TTL_MS, kept in memory only. */
  recentlySeen (peer: string): boolean {
    const s = this.strangers.get(peer)
    return s !== undefined && Date.now() - s.lastSeen <= this.limits.strangerTtlMs
  }

  /** Adds addresses learnt from another peer (peer exchange); kept in memory only for a peer that does not matter (yet). */
  async learn (peer: string, addrs: string[]): Promise<void> {
    if (peer === this.libp2p.peerId.toString() || addrs.length === 0 || !this.store.isOpen) return
    if (!await this.matters(peer)) {
      this.sighted(peer, addrs.filter(a => a.length <= 256), this.strangers.get(peer)?.lastSeen ?? 0)
      return
    }
    const existing = await this.store.getPeer(peer)
    const merged = [...new Set([...(existing?.addrs ?? []), ...addrs.filter(a => a.length <= 256)])].slice(0, MAX_ADDRS_PER_PEER)
    if (existing !== undefined && merged.length === existing.addrs.length) return
    await this.store.putPeer({ peerId: peer, addrs: merged, lastSeen: existing?.lastSeen ?? 0 })
    await this.libp2p.peerStore.patch(peerIdFromString(peer), { multiaddrs: merged.map(a => multiaddr(a)) })
      .catch((err: Error) => { log('peer store merge of %s: %s', peer, err.message) })
  }

  /**
   * Addresses known for `peers` (peer exchange). Asked by `asker`, answered only when it
   * matters here (a member of some volume held here, or joined): a stranger learns nothing.
   */
  async locate (peers: string[], asker?: string): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {}
    if (asker !== undefined && !await this.matters(asker)) return out
    const wanted = await this.wanted()
    for (const p of peers) {
      // A member added since it identified here as a stranger is told about at once (the
      // next redial round would store it).
      if (wanted.has(p)) await this.promote(p)
      // A stranger seen here lately is told about too (to members only): the operator may be
      // adding it as a replica on the asking node.
      // A connected reader's record is not kept (only members and joined peers are): what identify gave.
      const addrs = (await this.store.getPeer(p))?.addrs ?? this.strangers.get(p)?.addrs ?? await this.connectedAddrs(p)
      if (addrs.length > 0) out[p] = addrs
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
    // A stranger the operator now names (add-replica): the addresses it gave when it identified.
    const seen = this.strangers.get(peer)
    if ((known === undefined || known.addrs.length === 0) && seen !== undefined && seen.addrs.length > 0) {
      await this.libp2p.peerStore.patch(peerIdFromString(peer), { multiaddrs: seen.addrs.map(a => multiaddr(a)) })
        .catch((err: Error) => { log('peer store merge of %s: %s', peer, err.message) })
    } else if (known === undefined || known.addrs.length === 0) {
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

  /** Whether the operator introduced `peer` (--join, join(); persisted; or --bootstrap, for this run). */
  isJoined (peer: string): boolean {
    return this.joined.has(peer) || this.bootstrap.some(a => a.endsWith(`/p2p/${peer}`))
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

  /**
   * Deletes the records of peers that no longer matter (a member removed, or a record an older
   * version stored for a stranger), forgets strangers seen too long ago, and drops disconnected
   * strangers from libp2p's peer store (identify put what they announced there; reach() puts
   * back the few addresses kept in memory if the operator names one).
   */
  private async prune (wanted: Set<string>, peers: PeerRecord[], now: number): Promise<void> {
    const gone = peers.filter(p => !wanted.has(p.peerId))
    for (const p of gone) {
      await this.store.deletePeer(p.peerId)
      this.dialState.delete(p.peerId)
      if (!this.isConnected(p.peerId)) await this.dropFromPeerStore(p.peerId)
    }
    if (gone.length > 0) log('forgot %d peer(s) no volume here needs', gone.length)
    for (const [p, s] of this.strangers) if (now - s.lastSeen > this.limits.strangerTtlMs) this.strangers.delete(p)
    for (const p of await this.libp2p.peerStore.all().then(all => all.map(x => x.id.toString()), () => [])) {
      if (!wanted.has(p) && p !== this.libp2p.peerId.toString() && !this.isConnected(p)) await this.dropFromPeerStore(p)
    }
  }

  /** The listen addresses libp2p's peer store holds for a connected peer that matters (at most MAX_ADDRS_PER_PEER). */
  private async connectedAddrs (peer: string): Promise<string[]> {
    if (!this.isConnected(peer) || !await this.matters(peer)) return []
    const p = await this.libp2p.peerStore.get(peerIdFromString(peer)).catch(() => undefined)
    return (p?.addresses ?? []).map(a => a.multiaddr.toString()).filter(a => !a.includes('/p2p-circuit')).slice(0, MAX_ADDRS_PER_PEER)
  }

  private async dropFromPeerStore (peer: string): Promise<void> {
    await this.libp2p.peerStore.delete(peerIdFromString(peer)).catch((err: Error) => { log('peer store delete of %s: %s', peer, err.message) })
  }

  private async tick (): Promise<void> {
    if (!this.store.isOpen) return
    const now = Date.now()
    let peers: PeerRecord[]
    let wanted: Set<string>
    try {
      wanted = await this.wanted()
      await this.prune(wanted, await this.store.listPeers(), now)
      for (const p of wanted) if (this.strangers.has(p)) await this.promote(p)
      peers = await this.store.listPeers()
      this.knownPeers = peers.length
    } catch (err) {
      if (this.store.isOpen) log.error('redial round: %s', (err as Error).message)
      return
    }
    for (const p of wanted) if (!this.wantedSince.has(p)) this.wantedSince.set(p, now)
    for (const p of this.wantedSince.keys()) if (!wanted.has(p)) this.wantedSince.delete(p)
    if (this.connectedPeers().length === 0) void this.dialBootstrap()
    void this.links?.tick().catch((err: Error) => { if (this.store.isOpen) log('volume links: %s', err.message) })
    for (const peer of peers) {
      if (!wanted.has(peer.peerId)) continue
      if (this.blocked.has(peer.peerId) || this.isConnected(peer.peerId) || peer.addrs.length === 0) continue
      const st = this.dialState.get(peer.peerId) ?? { backoff: BACKOFF_MIN_MS, next: 0, dialing: false }
      this.dialState.set(peer.peerId, st)
      if (st.dialing || st.next > now) continue
      st.dialing = true
      // The addresses kept here (at most MAX_ADDRS_PER_PEER), not whatever the peer announced.
      const addrs = peer.addrs.slice(0, MAX_ADDRS_PER_PEER).map(a => multiaddr(a.includes('/p2p/') ? a : `${a}/p2p/${peer.peerId}`))
      this.libp2p.dial(addrs, { signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(DIAL_TIMEOUT_MS)]) })
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

/** A multiaddr that names its peer (ends in /p2p/<peer id>), or BAD_REQUEST. */
function checkedAddr (addr: string): Multiaddr {
  let ma: Multiaddr
  try {
    ma = multiaddr(addr)
  } catch (err) {
    throw new InvalidInputError(Codes.BAD_REQUEST, `not a multiaddr: ${addr} (${(err as Error).message})`)
  }
  if (ma.getComponents().find(c => c.name === 'p2p')?.value === undefined) throw new InvalidInputError(Codes.BAD_REQUEST, `multiaddr ${addr} must end with /p2p/<peer id>`)
  return ma
}
