import type { RequestGate } from '../protocols/sources.js'
import type { LinkFaults } from './link-faults.js'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { registerIndexHandler, fetchIndexPage } from '../protocols/index-protocol.js'
import { registerChunkHandler } from '../protocols/chunk-protocol.js'
import { registerNotifyHandler, sendNotice, type Notice } from '../protocols/notify-protocol.js'
import { registerControlHandler, requestMemberState } from '../protocols/control-protocol.js'
import { INDEX_PAGE_RECORDS } from '../protocols/constants.js'
import { readerAuthorizer } from './member-authorizer.js'
import { ReaderStreams } from './reader-streams.js'
import { ChunkFetcher } from './chunk-fetcher.js'
import { HolderChoice, sourcesOf } from './holder-choice.js'
import { ServedBytes } from './served-bytes.js'
import { OnDemandReader, DEFAULT_READ_TIMEOUT_MS } from './on-demand.js'
import { BackgroundCopy, type CopyProgress } from './background-copy.js'
import { Membership, type MembershipOptions, type ChangeOpts, type ChangeResult } from './membership.js'
import type { AnnounceResult, MembershipHost } from './membership-host.js'
import { AllModeWrites, type AllModeOptions } from './all-mode-writes.js'
import { MemberStates, owingMerge, type VolumeMemberState } from './member-state.js'
import { Pulls, type PullMode } from './pulls.js'
import { Notices } from './notices.js'
import { RemoteViews } from './remote-views.js'
import { Decisions } from './decisions.js'
import { verifyChunks } from './chunk-verify.js'
import type { VolumeRecord } from '../core/records.js'
import type { TransferSink } from '../core/telemetry.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'
export type { PullMode } from './pulls.js'
export { notTakenEffect, type AnnounceResult } from './membership-host.js'

const log = logger('sync')

/** Connected members are pulled from at least this often, in case a notice was lost. */
const SAFETY_PULL_MS = 15_000

export interface MemberView {
  peerId: string
  self: boolean
  connected: boolean
  /** steady, copy (a wannabe), ... as this member last reported it; null if not heard yet. */
  state: string | null
  generation: number | null
  /** The member's own change-log head, as last heard. */
  seq: number | null
  /** How far this node has applied that member's change log. */
  watermark: number | null
  syncing: boolean
  lastSyncAt: number | null
  lastError: string | null
  /** Not connected now (then `state` is `offline`, and `lastState` what it last reported). */
  offline: boolean
  /** The state this member last reported, connected or not; null if not heard yet. */
  lastState: string | null
  /**
   * This node has applied the member's change log up to its head as heard on the current
   * connection (a head from an earlier connection may be stale). null for this node.
   */
  caughtUp: boolean | null
  /**
   * This node's changes the member has not applied yet, counted from where it last asked
   * (it confirms the rest on its next pull: a notice or the 15 s safety pull). null for this
   * node and for a member that has not asked since it was copied. `complete: false`: at least.
   */
  behind: MemberLag | null
  /** When this node last saw the member in sync both ways (caught up, nothing behind); null: not since it started. */
  inSyncAt: number | null
}

export interface MemberLag { changes: number, bytes: number, complete: boolean }

export interface EngineOptions extends MembershipOptions, AllModeOptions {
  /** Read timeout for chunks fetched on demand. */
  readTimeoutMs?: number
  /** Want-lists in flight for the background copy of a wannabe. */
  copyConcurrency?: number
  telemetry?: TransferSink // where chunk traffic is counted for metrics (node/metrics.ts)
}

/**
 * The sync engine keeps every volume this node holds identical with its other members. It
 * builds the parts and registers the protocol handlers: index catch-up (pulls.ts), change
 * notices (notices.ts), the background copy, membership, all-mode writes, and this node's
 * member-state machine (member-state.ts); and it answers status about them.
 */
export class SyncEngine {
  readonly fetcher: ChunkFetcher
  readonly reader: OnDemandReader
  readonly copy: BackgroundCopy
  private readonly selfId: string
  readonly membership: Membership
  readonly allMode: AllModeWrites
  /** This node's member state of every volume. */
  readonly states: MemberStates
  /** Index and chunk streams open to readers, closed when their grant is revoked. */
  readonly readerStreams = new ReaderStreams()
  /** Chunk bytes served here per volume, and whom this node fetched from (holder-choice.ts). */
  readonly served = new ServedBytes(); readonly holders = new HolderChoice()
  /** Per volume, what the last merge found damaged (chunks dropped, and the live files they belong to). */
  readonly damaged = new Map<string, { damagedChunks: number, damagedFiles: number }>()
  private readonly remotes = new RemoteViews()
  private readonly decisions = new Decisions()
  /** When each (volume, member) was last seen in sync both ways (status computes it). */
  private readonly inSync = new Map<string, number>()
  private readonly pulls: Pulls
  private readonly notices: Notices
  private readonly controller = new AbortController()
  private safetyTimer: NodeJS.Timeout | undefined
  /** The merge running (or queued after it) per volume: one at a time, bounded by the volumes held. */
  private readonly merging = new Map<string, Promise<void>>()
  private stopped = false

  private readonly faults: { serveCorruptChunks?: boolean, links?: LinkFaults }
  /** Per-peer limits every handler passes its requests through (peer-limits.ts). */
  private readonly gate: RequestGate | undefined

  constructor (private readonly libp2p: Libp2p, private readonly store: Store, private readonly peers: PeerManager, opts: EngineOptions = {}) {
    this.faults = opts.faults ?? {}
    this.gate = opts.gate
    this.selfId = libp2p.peerId.toString()
    const states = this.states = new MemberStates(store)
    this.fetcher = new ChunkFetcher(libp2p, store, opts.telemetry, this.holders)
    this.reader = new OnDemandReader(store, this.fetcher, vol => this.sources(vol), opts.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS)
    this.copy = new BackgroundCopy(store, this.fetcher, this.reader, vol => this.sources(vol), vol => states.isCaughtUp(vol) || states.repairing.has(vol),
      async vol => { await this.becomeSteady(vol) }, opts.copyConcurrency ?? 4, vol => states.repairing.has(vol))
    const stopped = (): boolean => this.stopped
    const signal = this.controller.signal
    this.pulls = new Pulls({
      store, peers, fetcher: this.fetcher, states, remotes: this.remotes, selfId: this.selfId, signal, stopped,
      fetchPage: async (peer, req, sig) => await fetchIndexPage(libp2p, peerIdFromString(peer), { ...req, limit: INDEX_PAGE_RECORDS }, sig),
      sources: (vol, first) => this.sources(vol, first),
      kickCopy: vol => { this.copy.kick(vol) },
      recordDecision: (vol, peer, decision, why) => { this.decisions.record(vol, peer, decision, why) }
    })
    this.notices = new Notices({
      store, peers, states, remotes: this.remotes, selfId: this.selfId, stopped,
      send: async (peer, notice) => { await sendNotice(libp2p, peerIdFromString(peer), notice, AbortSignal.any([signal, AbortSignal.timeout(5_000)])) },
      pull: (vol, peer) => { this.schedulePull(vol, peer) }
    })
    const host: MembershipHost = {
      signal,
      schedulePull: (vol, peer, mode) => { this.schedulePull(vol, peer, mode) },
      kickCopy: vol => { this.copy.kick(vol) },
      progressOf: vol => this.copy.progressOf(vol),
      setRemote: (vol, peer, state, generation, seq) => { this.setRemote(vol, peer, state, generation, seq) },
      forgetRemote: (vol, peer) => { this.forgetRemote(vol, peer) },
      relisted: vol => { this.relisted(vol) },
      reconfigured: vol => {
        this.readerStreams.reconfigured(vol)
        this.gate?.reconsider?.([...vol.members, ...(vol.readers ?? [])])
      }
    }
    this.membership = new Membership(libp2p, store, peers, host, states, this.decisions, opts)
    this.allMode = new AllModeWrites(libp2p, store, peers, this.fetcher, this.controller.signal, opts)
  }

  /** Member states and heads heard (bounded by the members of the volumes held here). */
  get remoteEntries (): number { return this.remotes.size }

  /** Aborted when the engine stops. */
  get signal (): AbortSignal { return this.controller.signal }

  /** Steady volumes that failed to fetch chunks of an update: the background copy repairs them. */
  get needsRepair (): ReadonlySet<string> { return this.states.repairing }

  setRemote (volume: string, peer: string, state: string, generation: number | null, seq?: number): void {
    this.remotes.set(volume, peer, state, generation, seq)
  }

  forgetRemote (volume: string, peer: string): void {
    this.remotes.forget(volume, peer)
  }

  /** Holders to fetch chunks from: connected ones, spread by holder-choice.ts (a member asks steady members first). */
  private sources (vol: VolumeRecord, first?: string): string[] {
    return sourcesOf(vol, { selfId: this.selfId, isConnected: p => this.peers.isConnected(p), stateOf: (v, m) => this.remotes.stateOf(v, m)?.state }, this.holders, first)
  }

  /** A chunk for a read: local, or fetched on demand from the members (wannabe reads). */
  async readChunk (vol: VolumeRecord, hash: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
    return await this.reader.get(vol, hash, signal)
  }

  progress (volume: string): CopyProgress | undefined {
    return this.copy.progressOf(volume)
  }

  private async becomeSteady (volume: string): Promise<void> {
    await this.states.becomeSteady(volume)
    this.notices.announceSeq(volume)
  }

  /**
   * Merge after an unclean shutdown: the volume goes to `merge` (persisted, so a crash during
   * the merge merges again), every watermark is forgotten (the next pull from each member
   * compares the full index), and every chunk of every live record is checked against its
   * hash (chunk-verify.ts). The volume is steady again when the verification is done, nothing
   * is missing and a full pull from a member has completed (or there is no other member).
   */
  private async merge (volume: string): Promise<void> {
    // Removed meanwhile (a merge queued behind one the removal interrupted): it owes the merge
    // (removedFrom) and runs it when listed again.
    if ((await this.store.getVolume(volume))?.state === 'removed') return
    await this.states.enterMerge(volume)
    await this.store.clearWatermarks(volume)
    const { checked, dropped, damagedFiles } = await verifyChunks(this.store, volume, this.controller.signal)
    this.damaged.set(volume, { damagedChunks: dropped, damagedFiles })
    this.states.markVerified(volume)
    const vol = await this.store.requireVolume(volume)
    if (!vol.members.some(m => m !== this.selfId)) this.states.markCaughtUp(volume)
    log('merge of %s: verified %d chunks, %d dropped (%d files damaged)', volume, checked, dropped, damagedFiles)
    for (const m of vol.members) if (m !== this.selfId && this.peers.isConnected(m)) this.schedulePull(volume, m, 'merge')
    this.copy.kick(volume)
  }

  /** Runs the merge of `volume` after the one under way, if any (a re-listing during a merge merges again). */
  private startMerge (volume: string): void {
    const next = (this.merging.get(volume) ?? Promise.resolve())
      .then(async () => { if (!this.stopped) await this.merge(volume) })
      .catch((err: Error) => { log.error('merge of %s failed: %s', volume, err.message) })
      .finally(() => { if (this.merging.get(volume) === next) this.merging.delete(volume) })
    this.merging.set(volume, next)
  }

  /**
   * A later generation listed this node again after it was removed. If that put the volume
   * back in `merge` (removed during a merge, or found dirty while removed), the merge runs from
   * the start: without its verification the volume would never leave `merge` (issue 13, w4b/7).
   */
  private relisted (vol: VolumeRecord): void {
    if (vol.state === 'merge') this.startMerge(vol.name)
  }

  async start (): Promise<void> {
    // Promises kept by the last run are loaded before any prepare-generation is answered.
    await this.membership.start()
    const store = this.store
    const index = {
      requireVolume: async (name: string) => await store.requireVolume(name),
      changesSince: (vol: string, after: number, o?: { batch?: number }) => store.changesSince(vol, after, o),
      noteApplied: async (vol: string, peer: string, seq: number) => { await store.noteApplied(vol, peer, seq) },
      indexComplete: (vol: VolumeRecord) => this.states.indexComplete(vol)
    }
    await registerIndexHandler(this.libp2p, index, readerAuthorizer(this.store, this.readerStreams), this.faults.links, this.gate)
    await registerChunkHandler(this.libp2p, this.store, readerAuthorizer(this.store, this.readerStreams), (peer, bytes, vol, chunks, reader) => { this.served.add(vol, peer, bytes, chunks); this.fetcher.sink?.sent(vol, reader ? 'on-demand' : 'bulk', bytes, chunks) }, this.faults, this.gate)
    await registerNotifyHandler(this.libp2p, (peer, notice: Notice) => { this.notices.received(peer, notice) }, this.gate)
    await registerControlHandler(this.libp2p, {
      // Peer exchange is for members: a stranger learns no address (peer-manager.ts).
      locate: async (peer, peers) => await this.peers.locate(peers, peer),
      ensureVolume: async (peer, desc, probe) => { this.faults.links?.announceReceived(probe); return await this.membership.ensureVolume(peer, desc, probe) },
      prepareGeneration: async (peer, desc, release, attempt) => await this.membership.prepareGeneration(peer, desc, release, attempt),
      memberState: async (peer, volume, volumeId, withSize) => await this.membership.memberState(peer, volume, volumeId, withSize),
      proposalOutcome: async (peer, q) => await this.membership.proposalOutcome(peer, q),
      vouch: async (peer, volume, volumeId, member) => await this.membership.acceptance.vouch(peer, volume, volumeId, member)
    }, this.gate)
    await this.allMode.start()
    this.store.commitListeners.add((vol) => { this.notices.announceSeq(vol.name) })
    // Stamped before the greeting asks for fresh heads: heads heard before it are stale.
    this.libp2p.addEventListener('peer:connect', (evt) => { const p = evt.detail.toString(); this.remotes.connected(p); void this.membership.greet(p); void this.membership.grants.greet(p) })
    this.safetyTimer = setInterval(() => { void this.pulls.pullAllConnected() }, SAFETY_PULL_MS)
    this.safetyTimer.unref()
    for (const vol of await this.store.listVolumes()) {
      if (vol.state === 'removed') {
        // Not merged while removed; the record keeps that it owes one when listed again.
        if (this.store.foundDirty.includes(vol.name)) await this.store.updateVolume(vol.name, owingMerge)
        continue
      }
      if (vol.state === 'merge' || (this.store.foundDirty.includes(vol.name) && vol.state !== 'copy')) {
        // Not shut down cleanly (or a merge itself was interrupted): merge before steady.
        this.startMerge(vol.name)
      } else if (vol.state === 'copy') {
        // A copy interrupted by a stop resumes: chunks already held are not fetched again.
        this.copy.kick(vol.name)
      } else {
        // `repairing` lives in memory: a steady replica that lacked chunks before a stop says so again.
        void this.copy.lacks(vol.name).then(n => {
          if (n === 0 || this.stopped) return
          log.error('%s: steady but %d file(s) lack chunks: repairing in the background', vol.name, n)
          this.states.startRepair(vol.name)
          this.copy.kick(vol.name)
        }, (err: Error) => { if (!this.stopped) log.error('chunk check of %s failed: %s', vol.name, err.message) })
      }
    }
    // Peers already connected (joined before the engine started) get the same greeting.
    for (const peer of this.peers.connectedPeers()) { void this.membership.greet(peer); void this.membership.grants.greet(peer) }
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.membership.stop()
    this.allMode.stop()
    clearInterval(this.safetyTimer)
    this.controller.abort()
    this.copy.stop()
    await this.pulls.settle()
    await this.copy.settled()
    await Promise.allSettled([...this.merging.values()])
  }

  /** Pulls `peer`'s changes of `volume` (pulls.ts). */
  schedulePull (volume: string, peer: string, mode: PullMode = 'sync'): void {
    this.pulls.schedule(volume, peer, mode)
  }

  async announce (vol: VolumeRecord): Promise<AnnounceResult[]> {
    return await this.membership.announce(vol)
  }

  async addReplica (volume: string, peer: string, opts: ChangeOpts = {}): Promise<ChangeResult> {
    return await this.membership.addReplica(volume, peer, opts)
  }

  /** A member's own report of its state of a volume (asked now). */
  async remoteState (vol: VolumeRecord, peer: string): Promise<{ state: string, progress?: Record<string, number | null> }> {
    const st = await requestMemberState(this.libp2p, peerIdFromString(peer), vol.name, vol.id, AbortSignal.timeout(5_000))
    this.setRemote(vol.name, peer, st.state, st.generation, st.seq)
    return { state: st.state, ...(st.progress !== undefined ? { progress: st.progress } : {}) }
  }

  async removeReplica (volume: string, peer: string, opts: ChangeOpts = {}): Promise<ChangeResult> {
    return await this.membership.removeReplica(volume, peer, opts)
  }

  // ---- status ----

  /**
   * Per-member view of a volume for status. Each member's `seq` is its own log's head (logs
   * are numbered per member, so equal trees show different seqs): how far apart two members
   * are is `caughtUp` (this node has all of the member's log) and `behind` (what the member
   * still lacks of this node's).
   */
  async members (vol: VolumeRecord): Promise<MemberView[]> {
    const watermarks = await this.store.listWatermarks(vol.name)
    const applied = await this.store.listApplied(vol.name)
    return await Promise.all(vol.members.map(async (m): Promise<MemberView> => {
      if (m === this.selfId) {
        const state = this.localState(vol)
        return {
          peerId: m, self: true, connected: true, state, generation: vol.generation, seq: vol.seq, watermark: null, syncing: false, lastSyncAt: null, lastError: null,
          offline: false, lastState: state, caughtUp: null, behind: null, inSyncAt: null
        }
      }
      const remote = this.remotes.stateOf(vol.name, m)
      const connected = this.peers.isConnected(m)
      const watermark = watermarks[m] ?? 0
      const head = this.remotes.freshHeadOf(vol.name, m)
      const view = this.pulls.viewOf(vol.name, m)
      const caughtUp = connected && head !== undefined && watermark >= head && !view.syncing
      const behind = applied[m] === undefined ? null : await this.store.changesAfter(vol.name, applied[m], 10_000)
      const key = `${vol.name}\x00${m}`
      if (caughtUp && behind?.changes === 0) this.inSync.set(key, Date.now())
      return {
        peerId: m,
        self: false,
        connected,
        state: connected ? remote?.state ?? null : 'offline',
        generation: remote?.generation ?? null,
        seq: this.remotes.headOf(vol.name, m) ?? null,
        watermark,
        ...view,
        offline: !connected,
        lastState: remote?.state ?? null,
        caughtUp,
        behind,
        inSyncAt: this.inSync.get(key) ?? null
      }
    }))
  }

  /**
   * Whether this node holds everything its members have: steady, nothing lacking or being
   * repaired, at least one other member reached (none: it cannot know what they hold, e.g.
   * right after a restart) and caught up with every connected one. `volume wait --steady`
   * waits for it. A volume with no other member holds everything once steady.
   */
  holdsAll (vol: VolumeRecord, members: MemberView[]): boolean {
    const lack = this.lacking(vol.name)
    if (this.localState(vol) !== 'steady' || this.states.repairing.has(vol.name) || lack.files > 0 || lack.bytes > 0) return false
    const others = members.filter(m => !m.self)
    const connected = others.filter(m => m.connected)
    return others.length === 0 || (connected.length > 0 && connected.every(m => m.caughtUp === true))
  }

  /** This node's state of a volume as status shows it (member-state.ts). */
  /** A member's state and connection as known here, without reading the store (node/node-events.ts polls it). */
  memberStateOf (vol: VolumeRecord, m: string): { state: string | null, connected: boolean } {
    return m === this.selfId ? { state: this.localState(vol), connected: true } : this.peers.isConnected(m) ? { state: this.remotes.stateOf(vol.name, m)?.state ?? null, connected: true } : { state: 'offline', connected: false }
  }

  localState (vol: VolumeRecord): VolumeMemberState {
    return this.states.shown(vol, this.pulls.catchingUp(vol.name))
  }

  /** What this node still lacks of a volume, summed over the pulls under way, and why it refused a peer. */
  lacking (volume: string): { files: number, bytes: number, refused: string | null } {
    return { ...this.pulls.pending(volume), refused: this.membership.refusals.get(volume) ?? this.states.offline.get(volume) ?? null }
  }
}
