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
import { ConflictError, InvalidInputError, Codes } from './errors.js'
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
  /** The member's own change-log head, as last heard. */
  seq: number | null
  /** How far this node has applied that member's change log. */
  watermark: number | null
  syncing: boolean
  lastSyncAt: number | null
  lastError: string | null
}

export interface AnnounceResult { peerId: string, status: 'created' | 'exists' | 'pending' | 'refused', error?: string }

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
  private readonly selfId: string
  private readonly pulls = new Map<string, PullState>()
  private readonly heads = new Map<string, number>()
  private readonly noticeRounds = new Map<string, { running: boolean, again: boolean }>()
  private readonly refusals = new Map<string, string>()
  private readonly controller = new AbortController()
  private safetyTimer: NodeJS.Timeout | undefined
  private stopped = false

  constructor (private readonly libp2p: Libp2p, private readonly store: Store, private readonly peers: PeerManager) {
    this.selfId = libp2p.peerId.toString()
    this.fetcher = new ChunkFetcher(libp2p, store)
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
    // Peers already connected (joined before the engine started) get the same greeting.
    for (const peer of this.peers.connectedPeers()) void this.onPeerConnected(peer)
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearInterval(this.safetyTimer)
    this.controller.abort()
    for (const st of this.pulls.values()) clearTimeout(st.retryTimer)
    await Promise.allSettled([...this.pulls.values()].map(async st => await st.running))
  }

  // ---- membership ----

  /** Creates the volume on every member that can be reached now; the others get it when next seen. */
  async announce (vol: VolumeRecord): Promise<AnnounceResult[]> {
    const results: AnnounceResult[] = []
    await Promise.all(vol.members.filter(m => m !== this.selfId).map(async (member) => {
      if (!this.peers.isConnected(member)) { results.push({ peerId: member, status: 'pending' }); return }
      try {
        const { created } = await requestEnsureVolume(this.libp2p, peerIdFromString(member), descriptorOf(vol), AbortSignal.timeout(10_000))
        results.push({ peerId: member, status: created ? 'created' : 'exists' })
        this.schedulePull(vol.name, member)
      } catch (err) {
        results.push({ peerId: member, status: 'refused', error: (err as Error).message })
      }
    }))
    return results
  }

  private async ensureVolume (peer: string, desc: VolumeDescriptor): Promise<{ created: boolean }> {
    const candidate = asVolumeRecord({ ...desc, v: RECORD_VERSION, seq: 0, dirty: false, members: Array.isArray(desc?.members) ? [...desc.members].sort() : desc?.members })
    if (!candidate.members.includes(this.selfId)) throw new InvalidInputError(Codes.BAD_REQUEST, 'this node is not a member of that volume')
    if (!candidate.members.includes(peer)) throw new InvalidInputError(Codes.BAD_REQUEST, 'only a member may create a volume on another member')
    const local = await this.store.getVolume(candidate.name)
    if (local === undefined) {
      await this.store.createVolume(candidate)
      log('created volume %s (%s) at the request of %s', candidate.name, candidate.id, peer)
      this.schedulePull(candidate.name, peer)
      return { created: true }
    }
    if (local.id !== candidate.id) {
      this.refusals.set(candidate.name, `peer ${peer} offered volume id ${candidate.id}, this node holds ${local.id}`)
      throw new ConflictError('VOLUME_ID_MISMATCH', `volume '${candidate.name}' here has id ${local.id}, not ${candidate.id}`)
    }
    this.schedulePull(local.name, peer)
    return { created: false }
  }

  private async memberState (peer: string, volume: string, volumeId: string): Promise<MemberState & { addrs: Record<string, string[]> }> {
    const vol = await authorize(this.store, volume, volumeId, peer)
    const addrs: Record<string, string[]> = {}
    for (const m of vol.members) {
      if (m === this.selfId || m === peer) continue
      const rec = await this.store.getPeer(m)
      if (rec !== undefined && rec.addrs.length > 0) addrs[m] = rec.addrs
    }
    return { volume: vol.name, volumeId: vol.id, seq: vol.seq, generation: vol.generation, members: vol.members, state: 'steady', addrs }
  }

  private async onPeerConnected (peer: string): Promise<void> {
    if (this.stopped || !this.store.isOpen) return
    for (const vol of await this.store.listVolumes()) {
      if (!vol.members.includes(peer) || !vol.members.includes(this.selfId)) continue
      try {
        const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(10_000)])
        await requestEnsureVolume(this.libp2p, peerIdFromString(peer), descriptorOf(vol), signal)
        this.refusals.delete(vol.name)
        const state = await requestMemberState(this.libp2p, peerIdFromString(peer), vol.name, vol.id, signal) as MemberState & { addrs?: Record<string, string[]> }
        this.heads.set(`${vol.name}\x00${peer}`, state.seq)
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
            await sendNotice(this.libp2p, peerIdFromString(m), { volume: vol.name, volumeId: vol.id, seq: vol.seq }, AbortSignal.any([this.controller.signal, AbortSignal.timeout(5_000)]))
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
      if (needed.length > 0) {
        const sources = [peer, ...vol.members.filter(m => m !== peer && m !== this.selfId && this.peers.isConnected(m))]
        await this.fetcher.fetch(vol, needed, sources, signal)
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
        return { peerId: m, self: true, connected: true, seq: vol.seq, watermark: null, syncing: false, lastSyncAt: null, lastError: null }
      }
      const st = this.pulls.get(`${vol.name}\x00${m}`)
      return {
        peerId: m,
        self: false,
        connected: this.peers.isConnected(m),
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
