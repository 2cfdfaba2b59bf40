import type { LinkFaults } from './link-faults.js'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { registerIndexHandler, fetchIndexPage } from '../protocols/index-protocol.js'
import { registerChunkHandler } from '../protocols/chunk-protocol.js'
import { registerNotifyHandler, sendNotice, type Notice } from '../protocols/notify-protocol.js'
import { registerControlHandler, requestMemberState } from '../protocols/control-protocol.js'
import { INDEX_PAGE_RECORDS } from '../protocols/constants.js'
import { memberAuthorizer } from './member-authorizer.js'
import { decide } from './reconcile.js'
import { ChunkFetcher } from './chunk-fetcher.js'
import { OnDemandReader, DEFAULT_READ_TIMEOUT_MS } from './on-demand.js'
import { BackgroundCopy, type CopyProgress } from './background-copy.js'
import { Membership, type MembershipOptions } from './membership.js'
import { AllModeWrites, type AllModeOptions } from './all-mode-writes.js'
import { sha256, hashHex } from '../store/chunk-store.js'
import { chunkHashes, type FileRecord, type VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import type { Store, NewFileRecord } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'

const log = logger('sync')

/** Connected members are pulled from at least this often, in case a notice was lost. */
const SAFETY_PULL_MS = 15_000
const RETRY_MIN_MS = 500
const RETRY_MAX_MS = 30_000

interface PullState {
  running: Promise<void> | undefined
  again: boolean
  failures: number
  retryTimer: NodeJS.Timeout | undefined
  lastError: string | undefined
  lastSyncAt: number | undefined
  pending: { files: number, bytes: number } | undefined
  /** What the running (or last) pull is: a full index comparison, a minicopy, ... */
  mode: PullMode
  /** The next run compares the full index (from seq 0), whatever the watermark. */
  full: boolean
}

/** copy: full index comparison (a newcomer, or history not known); minicopy: since the watermark; merge: after a crash. */
export type PullMode = 'sync' | 'minicopy' | 'copy' | 'merge'

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
}

export interface AnnounceResult { peerId: string, status: 'created' | 'exists' | 'pending' | 'refused', error?: string }

export interface EngineOptions extends MembershipOptions, AllModeOptions {
  /** Read timeout for chunks fetched on demand. */
  readTimeoutMs?: number
  /** Want-lists in flight for the background copy of a wannabe. */
  copyConcurrency?: number
}

/**
 * The sync engine keeps every volume this node holds identical with its other members.
 *
 * States per (volume, peer) pull: idle -> running -> idle, with `again` set when a notice
 * arrives mid-pull (so one more pass runs), and a retry timer with exponential backoff after
 * a failure. A pull walks the peer's change log from our watermark, page by page: for each
 * page it decides every record (reconcile.ts), fetches the chunks the decisions need from
 * that peer first and other connected members after, then commits the records and the new
 * watermark in one synced batch. The watermark therefore never runs ahead of durable data.
 */
export class SyncEngine {
  readonly fetcher: ChunkFetcher
  readonly reader: OnDemandReader
  readonly copy: BackgroundCopy
  private readonly selfId: string
  readonly membership: Membership
  readonly allMode: AllModeWrites
  /** Steady volumes that failed to fetch chunks of an update: the background copy repairs them. */
  readonly needsRepair = new Set<string>()
  /** Volumes in copy or merge whose full index has been pulled to the end from some member. */
  private readonly caughtUp = new Set<string>()
  /** Volumes in merge whose own chunks have been verified since the merge began. */
  private readonly verified = new Set<string>()
  /** Chunks found missing or corrupt by the last verification, per volume. */
  readonly damaged = new Map<string, number>()
  private readonly remoteStates = new Map<string, { state: string, generation: number | null }>()
  private readonly pulls = new Map<string, PullState>()
  private readonly heads = new Map<string, number>()
  private readonly noticeRounds = new Map<string, { running: boolean, again: boolean }>()
  private readonly controller = new AbortController()
  private safetyTimer: NodeJS.Timeout | undefined
  private stopped = false

  private readonly faults: { serveCorruptChunks?: boolean, links?: LinkFaults }

  constructor (private readonly libp2p: Libp2p, private readonly store: Store, private readonly peers: PeerManager, opts: EngineOptions = {}) {
    this.faults = opts.faults ?? {}
    this.selfId = libp2p.peerId.toString()
    this.fetcher = new ChunkFetcher(libp2p, store)
    this.reader = new OnDemandReader(store, this.fetcher, vol => this.sources(vol), opts.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS)
    this.copy = new BackgroundCopy(store, this.fetcher, this.reader, vol => this.sources(vol), vol => this.caughtUp.has(vol) || this.needsRepair.has(vol),
      async vol => { await this.becomeSteady(vol) }, opts.copyConcurrency ?? 4, vol => this.needsRepair.has(vol))
    this.membership = new Membership(libp2p, store, peers, this, opts)
    this.allMode = new AllModeWrites(libp2p, store, peers, this.fetcher, this.controller.signal, opts)
  }

  /** Aborted when the engine stops. */
  get signal (): AbortSignal { return this.controller.signal }

  setRemote (volume: string, peer: string, state: string, generation: number | null, seq?: number): void {
    this.remoteStates.set(`${volume}\x00${peer}`, { state, generation })
    if (seq !== undefined) this.heads.set(`${volume}\x00${peer}`, seq)
  }

  forgetRemote (volume: string, peer: string): void {
    this.remoteStates.delete(`${volume}\x00${peer}`)
  }

  /** Members to fetch chunks from: connected ones, steady members first. */
  private sources (vol: VolumeRecord, first?: string): string[] {
    const others = vol.members.filter(m => m !== this.selfId && m !== first && this.peers.isConnected(m))
    const rank = (m: string): number => this.remoteStates.get(`${vol.name}\x00${m}`)?.state === 'steady' ? 0 : 1
    others.sort((x, y) => rank(x) - rank(y))
    return first !== undefined && first !== this.selfId ? [first, ...others] : others
  }

  /** A chunk for a read: local, or fetched on demand from the members (wannabe reads). */
  async readChunk (vol: VolumeRecord, hash: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
    return await this.reader.get(vol, hash, signal)
  }

  progress (volume: string): CopyProgress | undefined {
    return this.copy.progressOf(volume)
  }

  private async becomeSteady (volume: string): Promise<void> {
    this.needsRepair.delete(volume)
    await this.store.updateVolume(volume, v => v.state === 'copy' || v.state === 'merge' ? { ...v, state: 'steady' } : v)
    this.caughtUp.delete(volume)
    this.verified.delete(volume)
    this.announceSeq(volume)
  }

  /**
   * Merge after an unclean shutdown: the volume goes to `merge` (persisted, so a crash during
   * the merge merges again), every watermark is forgotten (the next pull from each member
   * compares the full index), and every chunk of every live record is read and checked against
   * its hash; a missing or corrupt one is dropped so the background copy fetches it again.
   * The volume is steady again when the verification is done, nothing is missing and a full
   * pull from a member has completed (or there is no other member).
   */
  private async merge (volume: string): Promise<void> {
    await this.store.updateVolume(volume, v => ({ ...v, state: 'merge' }))
    await this.store.clearWatermarks(volume)
    let bad = 0
    let batch: Uint8Array[] = []
    const check = async (): Promise<void> => {
      const bytes = await this.store.chunks.getMany(batch)
      const drop = batch.filter((h, i) => bytes[i] === undefined || Buffer.compare(sha256(bytes[i]!), h) !== 0)
      if (drop.length > 0) {
        log.error('merge of %s: %d chunk(s) missing or corrupt, to fetch again: %s', volume, drop.length, drop.slice(0, 4).map(hashHex).join(', '))
        await this.store.chunks.delete(drop)
        bad += drop.length
      }
      batch = []
    }
    const seen = new Set<string>()
    for await (const rec of this.store.listFiles(volume, '/', { signal: this.controller.signal })) {
      if (rec.deleted) continue
      for (const h of chunkHashes(rec)) {
        const k = hashHex(h)
        if (seen.has(k)) continue
        seen.add(k)
        batch.push(h)
        if (batch.length >= 64) await check()
      }
    }
    if (batch.length > 0) await check()
    this.damaged.set(volume, bad)
    this.verified.add(volume)
    const vol = await this.store.requireVolume(volume)
    if (!vol.members.some(m => m !== this.selfId)) this.caughtUp.add(volume)
    log('merge of %s: verified %d chunks, %d dropped', volume, seen.size, bad)
    for (const m of vol.members) if (m !== this.selfId && this.peers.isConnected(m)) this.schedulePull(volume, m, 'merge')
    this.copy.kick(volume)
  }

  async start (): Promise<void> {
    await registerIndexHandler(this.libp2p, this.store, memberAuthorizer(this.store), this.faults.links)
    await registerChunkHandler(this.libp2p, this.store, memberAuthorizer(this.store), undefined, this.faults)
    await registerNotifyHandler(this.libp2p, (peer, notice) => { this.onNotice(peer, notice) })
    await registerControlHandler(this.libp2p, {
      locate: async (_peer, peers) => await this.peers.locate(peers),
      ensureVolume: async (peer, desc) => await this.membership.ensureVolume(peer, desc),
      memberState: async (peer, volume, volumeId, withSize) => await this.membership.memberState(peer, volume, volumeId, withSize)
    })
    await this.allMode.start()
    this.store.commitListeners.add((vol) => { this.announceSeq(vol.name) })
    this.libp2p.addEventListener('peer:connect', (evt) => { void this.membership.greet(evt.detail.toString()) })
    this.membership.start()
    this.safetyTimer = setInterval(() => { void this.pullAllConnected() }, SAFETY_PULL_MS)
    this.safetyTimer.unref()
    for (const vol of await this.store.listVolumes()) {
      if (vol.state === 'removed') continue
      if (vol.state === 'merge' || (this.store.foundDirty.includes(vol.name) && vol.state !== 'copy')) {
        // Not shut down cleanly (or a merge itself was interrupted): merge before steady.
        void this.merge(vol.name).catch(err => log.error('merge of %s failed: %s', vol.name, err.message))
      } else if (vol.state === 'copy') {
        // A copy interrupted by a stop resumes: chunks already held are not fetched again.
        this.copy.kick(vol.name)
      }
    }
    // Peers already connected (joined before the engine started) get the same greeting.
    for (const peer of this.peers.connectedPeers()) void this.membership.greet(peer)
  }

  async stop (): Promise<void> {
    this.stopped = true
    this.membership.stop()
    this.allMode.stop()
    clearInterval(this.safetyTimer)
    this.controller.abort()
    this.copy.stop()
    for (const st of this.pulls.values()) clearTimeout(st.retryTimer)
    await Promise.allSettled([...this.pulls.values()].map(async st => await st.running))
    await this.copy.settled()
  }

  async announce (vol: VolumeRecord): Promise<AnnounceResult[]> {
    return await this.membership.announce(vol)
  }

  async addReplica (volume: string, peer: string): Promise<{ volume: VolumeRecord, announce: AnnounceResult[] }> {
    return await this.membership.addReplica(volume, peer)
  }

  /** A member's own report of its state of a volume (asked now). */
  async remoteState (vol: VolumeRecord, peer: string): Promise<{ state: string, progress?: Record<string, number | null> }> {
    const st = await requestMemberState(this.libp2p, peerIdFromString(peer), vol.name, vol.id, AbortSignal.timeout(5_000))
    this.setRemote(vol.name, peer, st.state, st.generation, st.seq)
    return { state: st.state, ...(st.progress !== undefined ? { progress: st.progress } : {}) }
  }

  async removeReplica (volume: string, peer: string): Promise<{ volume: VolumeRecord, announce: AnnounceResult[] }> {
    return await this.membership.removeReplica(volume, peer)
  }

  // ---- notices ----

  private onNotice (peer: string, notice: Notice): void {
    this.heads.set(`${notice.volume}\x00${peer}`, notice.seq)
    if (notice.state !== undefined) this.remoteStates.set(`${notice.volume}\x00${peer}`, { state: notice.state, generation: notice.generation ?? null })
    void this.store.getVolume(notice.volume).then(vol => {
      if (vol?.id === notice.volumeId && vol.members.includes(peer) && vol.state !== 'removed' && !this.membership.offline.has(vol.name)) this.schedulePull(vol.name, peer)
    }).catch(() => {})
  }

  /** Tells every connected member our new head; coalesced so a burst of writes sends few notices. */
  private announceSeq (volume: string): void {
    if (this.stopped) return
    const round = this.noticeRounds.get(volume) ?? { running: false, again: false }
    this.noticeRounds.set(volume, round)
    if (round.running) { round.again = true; return }
    round.running = true
    void (async () => {
      try {
        do {
          round.again = false
          const vol = await this.store.getVolume(volume)
          if (vol === undefined) return
          await Promise.allSettled(vol.members.filter(m => m !== this.selfId && this.peers.isConnected(m)).map(async m => {
            await sendNotice(this.libp2p, peerIdFromString(m), { volume: vol.name, volumeId: vol.id, seq: vol.seq, state: vol.state ?? 'steady', generation: vol.generation }, AbortSignal.any([this.controller.signal, AbortSignal.timeout(5_000)]))
          }))
        } while (round.again && !this.stopped)
      } catch (err) {
        log('notice round for %s failed: %s', volume, (err as Error).message)
      } finally {
        round.running = false
      }
    })()
  }

  // ---- pulls ----

  private async pullAllConnected (): Promise<void> {
    if (this.stopped || !this.store.isOpen) return
    for (const vol of await this.store.listVolumes().catch(() => [])) {
      if (vol.state === 'removed' || this.membership.offline.has(vol.name)) continue
      // A volume still in merge (or copy) that has not completed a full pull since it got there
      // asks for one again: the one scheduled by a greeting may have been missed.
      const mode = (vol.state === 'merge' && this.verified.has(vol.name)) || vol.state === 'copy'
        ? (this.caughtUp.has(vol.name) ? 'sync' : vol.state)
        : 'sync'
      for (const m of vol.members) {
        if (m !== this.selfId && vol.members.includes(this.selfId) && this.peers.isConnected(m)) this.schedulePull(vol.name, m, mode)
      }
      if (vol.state === 'merge' || vol.state === 'copy') this.copy.kick(vol.name)
    }
  }

  /**
   * Pulls `peer`'s changes of `volume` (now, or once more after the pull under way). `copy` and
   * `merge` compare the full index from seq 0; other modes go from the watermark.
   */
  schedulePull (volume: string, peer: string, mode: PullMode = 'sync'): void {
    if (this.stopped || peer === this.selfId) return
    const key = `${volume}\x00${peer}`
    let st = this.pulls.get(key)
    if (st === undefined) {
      st = { running: undefined, again: false, failures: 0, retryTimer: undefined, lastError: undefined, lastSyncAt: undefined, pending: undefined, mode, full: false }
      this.pulls.set(key, st)
    }
    if (mode !== 'sync') st.mode = mode
    if (mode === 'copy' || mode === 'merge') st.full = true
    if (st.running !== undefined) { st.again = true; return }
    clearTimeout(st.retryTimer)
    st.retryTimer = undefined
    const state = st
    state.running = (async () => {
      try {
        let fullDone = false
        let ran = false
        do {
          state.again = false
          const full = state.full
          state.full = false
          const done = await this.pull(volume, peer, state, full)
          ran ||= done
          fullDone ||= full && done
        } while (state.again && !this.stopped)
        const vol = await this.store.getVolume(volume)
        // Only a pull that went to the end of the peer's log counts (not one that found the
        // peer no member, or the volume offline, and returned at once).
        if ((vol?.state === 'copy' && ran) || (vol?.state === 'merge' && fullDone && this.verified.has(volume))) {
          this.caughtUp.add(volume)
          this.copy.kick(volume)
        }
        state.mode = 'sync'
        state.failures = 0
        state.lastError = undefined
        state.lastSyncAt = Date.now()
      } catch (err) {
        if (this.stopped) return
        state.failures++
        state.lastError = (err as Error).message
        const delay = Math.min(RETRY_MIN_MS * 2 ** (state.failures - 1), RETRY_MAX_MS)
        log('pull %s from %s failed (retry in %d ms): %s', volume, peer, delay, state.lastError)
        state.retryTimer = setTimeout(() => { if (this.peers.isConnected(peer)) this.schedulePull(volume, peer, state.mode) }, delay)
        state.retryTimer.unref()
      } finally {
        state.running = undefined
      }
    })()
  }

  /** Returns whether it ran to the end of the peer's log (false: nothing to pull from there). */
  private async pull (volume: string, peer: string, state: PullState, full: boolean): Promise<boolean> {
    const signal = this.controller.signal
    const vol = await this.store.getVolume(volume)
    if (vol === undefined || !vol.members.includes(peer) || !vol.members.includes(this.selfId) || vol.state === 'removed') return false
    if (this.membership.offline.has(volume)) return false
    const peerId = peerIdFromString(peer)
    let since = full ? 0 : await this.store.getWatermark(volume, peer)
    let first = true
    // The next index page is asked for while this one's chunks are fetched and committed.
    let prefetched: ReturnType<typeof fetchIndexPage> | undefined
    while (!signal.aborted) {
      let page
      try {
        page = await (prefetched ?? fetchIndexPage(this.libp2p, peerId, { volume, volumeId: vol.id, since, count: first, limit: INDEX_PAGE_RECORDS, scan: full }, signal))
        prefetched = undefined
      } catch (err) {
        prefetched = undefined
        if ((err as { code?: string }).code !== 'LOG_COMPACTED') throw err
        // Our watermark is below what the peer still has: compare the full index instead.
        log('%s from %s: %s', volume, peer, (err as Error).message)
        this.membership.recordDecision(volume, peer, 'copy', (err as Error).message)
        state.mode = 'copy'
        full = true
        since = 0
        continue
      }
      this.heads.set(`${volume}\x00${peer}`, page.head)
      if (page.more) {
        prefetched = fetchIndexPage(this.libp2p, peerId, { volume, volumeId: vol.id, since: page.last, count: false, limit: INDEX_PAGE_RECORDS, scan: full }, signal)
        prefetched.catch(() => {})
      }
      if (page.pending !== undefined) state.pending = { ...page.pending }
      first = false
      // Decide once outside the commit to learn which chunks to fetch; decide again inside it.
      const needed: Uint8Array[] = []
      for (const rec of page.records) {
        const d = decide(await this.store.getFile(volume, rec.path), rec)
        if (d.kind === 'skip') continue
        for (const r of d.kind === 'apply' ? [d.record] : d.records) {
          // One push per hash: spreading a long file's list (100k+ chunks) overflows the stack.
          if (!r.deleted) for (const h of chunkHashes(r)) needed.push(h)
        }
      }
      // A wannabe takes the index first and lets the background copy bring the chunks. Once it
      // holds the full index, it fetches later updates before committing them, as a steady
      // member does: otherwise a copy under continuous writes chases new files and never ends.
      let repair = false
      const current = await this.store.requireVolume(volume)
      const inline = current.state !== 'copy' || (!full && this.caughtUp.has(volume))
      if (needed.length > 0 && inline) {
        try {
          await this.fetcher.fetch(current, needed, this.sources(current, peer), { signal })
        } catch (err) {
          if (signal.aborted) throw err
          // A member that cannot apply an update does not stay silently behind: it takes the
          // new records (so it never serves the stale content as current), marks the volume
          // for repair, and the background copy fetches what is missing, retrying.
          log.error('%s: chunks of an update from %s could not be fetched (%s): repairing in the background', volume, peer, (err as Error).message)
          repair = true
        }
      }
      await this.store.commitFiles(volume, async (ctx) => {
        const out: NewFileRecord[] = []
        const staged = new Map<string, FileRecord>()
        for (const rec of page.records) {
          const local = staged.get(rec.path) ?? await ctx.get(rec.path)
          const d = decide(local, rec)
          if (d.kind === 'skip') continue
          for (const r of d.kind === 'apply' ? [d.record] : d.records) {
            out.push(r)
            staged.set(r.path, { ...r, seq: 0 })
          }
        }
        ctx.setWatermark(peer, page.last)
        return out
      })
      // Marked only once the new records are committed: 'repairing' never shows while the old version is still current.
      if (repair) this.needsRepair.add(volume)
      if (this.needsRepair.has(volume)) this.copy.kick(volume)
      if (state.pending !== undefined) {
        for (const rec of page.records) {
          if (rec.deleted) continue
          state.pending.files = Math.max(0, state.pending.files - 1)
          state.pending.bytes = Math.max(0, state.pending.bytes - rec.size)
        }
      }
      since = page.last
      if (!page.more) break
    }
    state.pending = undefined
    return !signal.aborted
  }

  /** Per-member view of a volume for status. */
  async members (vol: VolumeRecord): Promise<MemberView[]> {
    const watermarks = await this.store.listWatermarks(vol.name)
    return vol.members.map(m => {
      if (m === this.selfId) {
        return { peerId: m, self: true, connected: true, state: this.localState(vol), generation: vol.generation, seq: vol.seq, watermark: null, syncing: false, lastSyncAt: null, lastError: null }
      }
      const st = this.pulls.get(`${vol.name}\x00${m}`)
      const remote = this.remoteStates.get(`${vol.name}\x00${m}`)
      return {
        peerId: m,
        self: false,
        connected: this.peers.isConnected(m),
        state: remote?.state ?? null,
        generation: remote?.generation ?? null,
        seq: this.heads.get(`${vol.name}\x00${m}`) ?? null,
        watermark: watermarks[m] ?? 0,
        syncing: st?.running !== undefined,
        lastSyncAt: st?.lastSyncAt ?? null,
        lastError: st?.lastError ?? null
      }
    })
  }

  /**
   * This node's state of a volume as status shows it: the persisted state (steady, copy,
   * merge, removed), `offline` after a refused full copy, or while a steady member runs a
   * minicopy or full index comparison, that transient state.
   */
  localState (vol: VolumeRecord): string {
    if (this.membership.offline.has(vol.name)) return 'offline'
    const persisted = vol.state ?? 'steady'
    if (persisted !== 'steady') return persisted
    for (const [key, st] of this.pulls) {
      if (key.startsWith(`${vol.name}\x00`) && st.running !== undefined && (st.mode === 'minicopy' || st.mode === 'copy')) return st.mode
    }
    return 'steady'
  }

  /** What this node still lacks of a volume, summed over the pulls under way, and why it refused a peer. */
  lacking (volume: string): { files: number, bytes: number, refused: string | null } {
    let files = 0
    let bytes = 0
    for (const [key, st] of this.pulls) {
      if (!key.startsWith(`${volume}\x00`) || st.pending === undefined) continue
      files += st.pending.files
      bytes += st.pending.bytes
    }
    return { files, bytes, refused: this.membership.refusals.get(volume) ?? this.membership.offline.get(volume) ?? null }
  }
}
