import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { registerIndexHandler, fetchIndexPage } from '../protocols/index-protocol.js'
import { registerChunkHandler } from '../protocols/chunk-protocol.js'
import { registerNotifyHandler, sendNotice, type Notice } from '../protocols/notify-protocol.js'
import { registerControlHandler, requestEnsureVolume, requestMemberState, descriptorOf, type VolumeDescriptor, type MemberState } from '../protocols/control-protocol.js'
import { authorize } from '../protocols/auth.js'
import { INDEX_PAGE_RECORDS } from '../protocols/constants.js'
import { decide } from './reconcile.js'
import { ChunkFetcher } from './chunk-fetcher.js'
import { OnDemandReader, DEFAULT_READ_TIMEOUT_MS } from './on-demand.js'
import { BackgroundCopy, type CopyProgress } from './background-copy.js'
import { ConflictError, InvalidInputError, NotFoundError, Codes } from './errors.js'
import { asVolumeRecord } from '../store/codec.js'
import { RECORD_VERSION, chunkHashes, type FileRecord, type VolumeRecord } from '../store/records.js'
import { logger } from './log.js'
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
}

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

export interface EngineOptions {
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
  /** Volumes in copy state whose index has been pulled to the end from some member. */
  private readonly caughtUp = new Set<string>()
  private readonly remoteStates = new Map<string, { state: string, generation: number | null }>()
  private readonly pulls = new Map<string, PullState>()
  private readonly heads = new Map<string, number>()
  private readonly noticeRounds = new Map<string, { running: boolean, again: boolean }>()
  private readonly refusals = new Map<string, string>()
  private readonly controller = new AbortController()
  private safetyTimer: NodeJS.Timeout | undefined
  private stopped = false

  constructor (private readonly libp2p: Libp2p, private readonly store: Store, private readonly peers: PeerManager, opts: EngineOptions = {}) {
    this.selfId = libp2p.peerId.toString()
    this.fetcher = new ChunkFetcher(libp2p, store)
    this.reader = new OnDemandReader(store, this.fetcher, vol => this.sources(vol), opts.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS)
    this.copy = new BackgroundCopy(store, this.fetcher, this.reader, vol => this.sources(vol), vol => this.caughtUp.has(vol),
      async vol => { await this.becomeSteady(vol) }, opts.copyConcurrency ?? 4)
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
    await this.store.updateVolume(volume, v => ({ ...v, state: 'steady' }))
    this.caughtUp.delete(volume)
    this.announceSeq(volume)
  }

  async start (): Promise<void> {
    await registerIndexHandler(this.libp2p, this.store)
    await registerChunkHandler(this.libp2p, this.store)
    await registerNotifyHandler(this.libp2p, (peer, notice) => { this.onNotice(peer, notice) })
    await registerControlHandler(this.libp2p, {
      ensureVolume: async (peer, desc) => await this.ensureVolume(peer, desc),
      memberState: async (peer, volume, volumeId) => await this.memberState(peer, volume, volumeId)
    })
    this.store.commitListeners.add((vol) => { this.announceSeq(vol.name) })
    this.libp2p.addEventListener('peer:connect', (evt) => { void this.onPeerConnected(evt.detail.toString()) })
    this.safetyTimer = setInterval(() => { void this.pullAllConnected() }, SAFETY_PULL_MS)
    this.safetyTimer.unref()
    // A copy interrupted by a stop resumes: chunks already held are not fetched again.
    for (const vol of await this.store.listVolumes()) {
      if (vol.state === 'copy') this.copy.kick(vol.name)
    }
    // Peers already connected (joined before the engine started) get the same greeting.
    for (const peer of this.peers.connectedPeers()) void this.onPeerConnected(peer)
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearInterval(this.safetyTimer)
    this.controller.abort()
    this.copy.stop()
    for (const st of this.pulls.values()) clearTimeout(st.retryTimer)
    await Promise.allSettled([...this.pulls.values()].map(async st => await st.running))
    await this.copy.settled()
  }

  // ---- membership ----

  /** Creates the volume on every member that can be reached now; the others get it when next seen. */
  async announce (vol: VolumeRecord): Promise<AnnounceResult[]> {
    const results: AnnounceResult[] = []
    await Promise.all(vol.members.filter(m => m !== this.selfId).map(async (member) => {
      if (!this.peers.isConnected(member)) { results.push({ peerId: member, status: 'pending' }); return }
      try {
        const reply = await requestEnsureVolume(this.libp2p, peerIdFromString(member), descriptorOf(vol), AbortSignal.timeout(10_000))
        results.push({ peerId: member, status: reply.created ? 'created' : 'exists' })
        if (reply.volume !== undefined) await this.adopt(reply.volume)
        this.schedulePull(vol.name, member)
      } catch (err) {
        results.push({ peerId: member, status: 'refused', error: (err as Error).message })
      }
    }))
    return results
  }

  private candidateOf (desc: VolumeDescriptor): VolumeRecord {
    return asVolumeRecord({
      name: desc?.name, id: desc?.id, generation: desc?.generation, writeMode: desc?.writeMode, chunkSize: desc?.chunkSize, createdAt: desc?.createdAt,
      members: Array.isArray(desc?.members) ? [...new Set(desc.members)].sort() : desc?.members,
      v: RECORD_VERSION, seq: 0, dirty: false, state: 'copy'
    })
  }

  /**
   * A member asks this node to hold a volume (at creation, or after add-replica). A volume
   * new to this node starts in `copy`: it serves at once and fills in by background copy.
   */
  private async ensureVolume (peer: string, desc: VolumeDescriptor): Promise<{ created: boolean, volume?: VolumeDescriptor }> {
    const candidate = this.candidateOf(desc)
    if (!candidate.members.includes(this.selfId)) throw new InvalidInputError(Codes.BAD_REQUEST, 'this node is not a member of that volume')
    if (!candidate.members.includes(peer)) throw new InvalidInputError(Codes.BAD_REQUEST, 'only a member may create a volume on another member')
    const local = await this.store.getVolume(candidate.name)
    if (local === undefined) {
      await this.store.createVolume(candidate)
      log('created volume %s (%s) at the request of %s, as a wannabe', candidate.name, candidate.id, peer)
      this.remoteStates.delete(`${candidate.name}\x00${peer}`)
      this.schedulePull(candidate.name, peer)
      this.copy.kick(candidate.name)
      return { created: true, volume: descriptorOf(candidate) }
    }
    if (local.id !== candidate.id) {
      this.refusals.set(candidate.name, `peer ${peer} offered volume id ${candidate.id}, this node holds ${local.id}`)
      throw new ConflictError('VOLUME_ID_MISMATCH', `volume '${candidate.name}' here has id ${local.id}, not ${candidate.id}`)
    }
    const current = await this.adopt(desc) ?? local
    this.schedulePull(local.name, peer)
    return { created: false, volume: descriptorOf(current) }
  }

  /** Takes a member's descriptor of a volume if it is of a later generation than ours. */
  private async adopt (desc: VolumeDescriptor): Promise<VolumeRecord | undefined> {
    let candidate: VolumeRecord
    try { candidate = this.candidateOf(desc) } catch { return undefined }
    const local = await this.store.getVolume(candidate.name)
    if (local === undefined || local.id !== candidate.id || candidate.generation <= local.generation) return undefined
    const updated = await this.store.updateVolume(local.name, v => v.generation >= candidate.generation
      ? v
      : { ...v, generation: candidate.generation, members: candidate.members })
    log('volume %s: generation %d, members %o', updated.name, updated.generation, updated.members)
    // New members are greeted like any peer that connects.
    for (const m of updated.members) if (m !== this.selfId && !local.members.includes(m) && this.peers.isConnected(m)) void this.onPeerConnected(m)
    return updated
  }

  /**
   * Adds `peer` to the replica set of `volume`, online: a new generation on this node, then
   * every reachable member (and the newcomer, which starts as a wannabe) is told. Members not
   * reachable now learn it when they next meet any member.
   */
  async addReplica (volume: string, peer: string): Promise<{ volume: VolumeRecord, announce: AnnounceResult[] }> {
    try { peerIdFromString(peer) } catch { throw new InvalidInputError(Codes.BAD_REQUEST, `not a peer id: ${peer}`) }
    const vol = await this.store.getVolume(volume)
    if (vol === undefined) throw new NotFoundError(Codes.VOLUME_NOT_FOUND, `no volume named '${volume}' on this node`, { volume })
    if (!vol.members.includes(this.selfId)) throw new InvalidInputError(Codes.BAD_REQUEST, `this node is not a member of '${volume}'`)
    if (vol.members.includes(peer)) throw new ConflictError('ALREADY_MEMBER', `${peer} is already a member of '${volume}'`)
    const updated = await this.store.updateVolume(volume, v => ({ ...v, generation: v.generation + 1, members: [...v.members, peer].sort() }))
    this.remoteStates.set(`${volume}\x00${peer}`, { state: 'copy', generation: updated.generation })
    const announce = await this.announce(updated)
    return { volume: await this.store.requireVolume(volume), announce }
  }

  private async memberState (peer: string, volume: string, volumeId: string): Promise<MemberState & { addrs: Record<string, string[]> }> {
    const vol = await authorize(this.store, volume, volumeId, peer)
    const addrs: Record<string, string[]> = {}
    for (const m of vol.members) {
      if (m === this.selfId || m === peer) continue
      const rec = await this.store.getPeer(m)
      if (rec !== undefined && rec.addrs.length > 0) addrs[m] = rec.addrs
    }
    const progress = this.copy.progressOf(vol.name)
    return {
      volume: vol.name, volumeId: vol.id, seq: vol.seq, generation: vol.generation, members: vol.members, state: vol.state ?? 'steady', addrs,
      ...(vol.state === 'copy' && progress !== undefined ? { progress: { filesTotal: progress.filesTotal, filesDone: progress.filesDone, bytesTotal: progress.bytesTotal, bytesDone: progress.bytesDone } } : {})
    }
  }

  private async onPeerConnected (peer: string): Promise<void> {
    if (this.stopped || !this.store.isOpen) return
    for (const vol of await this.store.listVolumes()) {
      if (!vol.members.includes(peer) || !vol.members.includes(this.selfId)) continue
      try {
        const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(10_000)])
        const reply = await requestEnsureVolume(this.libp2p, peerIdFromString(peer), descriptorOf(vol), signal)
        if (reply.volume !== undefined) await this.adopt(reply.volume)
        this.refusals.delete(vol.name)
        const state: MemberState = await requestMemberState(this.libp2p, peerIdFromString(peer), vol.name, vol.id, signal)
        this.heads.set(`${vol.name}\x00${peer}`, state.seq)
        this.remoteStates.set(`${vol.name}\x00${peer}`, { state: state.state, generation: state.generation })
        for (const [m, addrs] of Object.entries(state.addrs ?? {})) {
          if (vol.members.includes(m) && Array.isArray(addrs)) await this.peers.learn(m, addrs.filter(a => typeof a === 'string'))
        }
        this.schedulePull(vol.name, peer)
      } catch (err) {
        if (this.stopped) return
        log('greeting %s about %s failed: %s', peer, vol.name, (err as Error).message)
        if ((err as { code?: string }).code === 'VOLUME_ID_MISMATCH') this.refusals.set(vol.name, (err as Error).message)
      }
    }
  }

  // ---- notices ----

  private onNotice (peer: string, notice: Notice): void {
    this.heads.set(`${notice.volume}\x00${peer}`, notice.seq)
    if (notice.state !== undefined) this.remoteStates.set(`${notice.volume}\x00${peer}`, { state: notice.state, generation: notice.generation ?? null })
    void this.store.getVolume(notice.volume).then(vol => {
      if (vol?.id === notice.volumeId && vol.members.includes(peer)) this.schedulePull(vol.name, peer)
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
      for (const m of vol.members) {
        if (m !== this.selfId && vol.members.includes(this.selfId) && this.peers.isConnected(m)) this.schedulePull(vol.name, m)
      }
    }
  }

  schedulePull (volume: string, peer: string): void {
    if (this.stopped || peer === this.selfId) return
    const key = `${volume}\x00${peer}`
    let st = this.pulls.get(key)
    if (st === undefined) {
      st = { running: undefined, again: false, failures: 0, retryTimer: undefined, lastError: undefined, lastSyncAt: undefined, pending: undefined }
      this.pulls.set(key, st)
    }
    if (st.running !== undefined) { st.again = true; return }
    clearTimeout(st.retryTimer)
    st.retryTimer = undefined
    const state = st
    state.running = (async () => {
      try {
        do {
          state.again = false
          await this.pull(volume, peer, state)
        } while (state.again && !this.stopped)
        const vol = await this.store.getVolume(volume)
        if (vol?.state === 'copy') {
          this.caughtUp.add(volume)
          this.copy.kick(volume)
        }
        state.failures = 0
        state.lastError = undefined
        state.lastSyncAt = Date.now()
      } catch (err) {
        if (this.stopped) return
        state.failures++
        state.lastError = (err as Error).message
        const delay = Math.min(RETRY_MIN_MS * 2 ** (state.failures - 1), RETRY_MAX_MS)
        log('pull %s from %s failed (retry in %d ms): %s', volume, peer, delay, state.lastError)
        state.retryTimer = setTimeout(() => { if (this.peers.isConnected(peer)) this.schedulePull(volume, peer) }, delay)
        state.retryTimer.unref()
      } finally {
        state.running = undefined
      }
    })()
  }

  private async pull (volume: string, peer: string, state: PullState): Promise<void> {
    const signal = this.controller.signal
    const vol = await this.store.getVolume(volume)
    if (vol === undefined || !vol.members.includes(peer) || !vol.members.includes(this.selfId)) return
    const peerId = peerIdFromString(peer)
    let since = await this.store.getWatermark(volume, peer)
    let first = true
    while (!signal.aborted) {
      const page = await fetchIndexPage(this.libp2p, peerId, { volume, volumeId: vol.id, since, count: first, limit: INDEX_PAGE_RECORDS }, signal)
      this.heads.set(`${volume}\x00${peer}`, page.head)
      if (page.pending !== undefined) state.pending = { ...page.pending }
      first = false
      // Decide once outside the commit to learn which chunks to fetch; decide again inside it.
      const needed: Uint8Array[] = []
      for (const rec of page.records) {
        const d = decide(await this.store.getFile(volume, rec.path), rec)
        if (d.kind === 'skip') continue
        for (const r of d.kind === 'apply' ? [d.record] : d.records) {
          if (!r.deleted) needed.push(...chunkHashes(r))
        }
      }
      // A wannabe takes the index first and lets the background copy bring the chunks.
      const current = await this.store.requireVolume(volume)
      if (needed.length > 0 && current.state !== 'copy') {
        await this.fetcher.fetch(current, needed, this.sources(current, peer), { signal })
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
  }

  /** Per-member view of a volume for status. */
  async members (vol: VolumeRecord): Promise<MemberView[]> {
    const watermarks = await this.store.listWatermarks(vol.name)
    return vol.members.map(m => {
      if (m === this.selfId) {
        return { peerId: m, self: true, connected: true, state: vol.state ?? 'steady', generation: vol.generation, seq: vol.seq, watermark: null, syncing: false, lastSyncAt: null, lastError: null }
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

  /** What this node still lacks of a volume, summed over the pulls under way, and why it refused a peer. */
  lacking (volume: string): { files: number, bytes: number, refused: string | null } {
    let files = 0
    let bytes = 0
    for (const [key, st] of this.pulls) {
      if (!key.startsWith(`${volume}\x00`) || st.pending === undefined) continue
      files += st.pending.files
      bytes += st.pending.bytes
    }
    return { files, bytes, refused: this.refusals.get(volume) ?? null }
  }
}
