import type { IndexPage, IndexRequest } from '../protocols/index-protocol.js'
import { reconcileRecord, holdsChunks } from './reconcile.js'
import { Codes } from '../core/errors.js'
import { chunkHashes, holds, type FileRecord, type VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import type { Store, NewFileRecord } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'
import type { ChunkFetcher } from './chunk-fetcher.js'
import type { MemberStates } from './member-state.js'
import type { RemoteViews } from './remote-views.js'

const log = logger('sync')

const RETRY_MIN_MS = 500
const RETRY_MAX_MS = 30_000

/** copy: full index comparison (a newcomer, or history not known); minicopy: since the watermark; merge: after a crash. */
export type PullMode = 'sync' | 'minicopy' | 'copy' | 'merge'

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

/** One page of a member's change log (the engine adds the page size and the protocol). */
export type FetchPage = (peer: string, req: Omit<IndexRequest, 'limit'>, signal: AbortSignal) => Promise<IndexPage>

export interface PullDeps {
  store: Store
  peers: PeerManager
  fetcher: ChunkFetcher
  states: MemberStates
  remotes: RemoteViews
  selfId: string
  /** Aborted when the engine stops. */
  signal: AbortSignal
  stopped: () => boolean
  fetchPage: FetchPage
  /** Members to fetch chunks from, `first` first. */
  sources: (vol: VolumeRecord, first?: string) => string[]
  kickCopy: (volume: string) => void
  recordDecision: (volume: string, peer: string, decision: string, why: string) => void
}

/**
 * Index catch-up: pulls of each (volume, peer). States per pull: idle -> running -> idle,
 * with `again` set when asked mid-pull (so one more pass runs), and a retry timer with
 * exponential backoff after a failure. A pull walks the peer's change log from our watermark,
 * page by page: for each page it decides every record (reconcile.ts), fetches the chunks the
 * decisions need from that peer first and other connected members after, then commits the
 * records and the new watermark in one synced batch. The watermark therefore never runs
 * ahead of durable data.
 */
export class Pulls {
  private readonly pulls = new Map<string, PullState>()

  constructor (private readonly d: PullDeps) {}

  /** Every connected member of every volume, once more (the safety net for a lost notice). */
  async pullAllConnected (): Promise<void> {
    const { store, states, selfId } = this.d
    if (this.d.stopped() || !store.isOpen) return
    for (const vol of await store.listVolumes().catch(() => [])) {
      if (vol.state === 'removed' || states.offline.has(vol.name)) continue
      // A volume still in merge (or copy) that has not completed a full pull since it got there
      // asks for one again: the one scheduled by a greeting may have been missed.
      const mode = (vol.state === 'merge' && states.isVerified(vol.name)) || vol.state === 'copy'
        ? (states.isCaughtUp(vol.name) ? 'sync' : vol.state)
        : 'sync'
      for (const m of vol.members) {
        if (m !== selfId && holds(vol, selfId) && this.d.peers.isConnected(m)) this.schedule(vol.name, m, mode)
      }
      if (vol.state === 'merge' || vol.state === 'copy') this.d.kickCopy(vol.name)
    }
  }

  /**
   * Pulls `peer`'s changes of `volume` (now, or once more after the pull under way). `copy` and
   * `merge` compare the full index from seq 0; other modes go from the watermark.
   */
  schedule (volume: string, peer: string, mode: PullMode = 'sync'): void {
    if (this.d.stopped() || peer === this.d.selfId) return
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
        let ranComplete = false
        do {
          state.again = false
          const full = state.full
          state.full = false
          const end = await this.pull(volume, peer, state, full)
          ranComplete ||= end === 'complete'
          fullDone ||= full && end !== 'none'
        } while (state.again && !this.d.stopped())
        const vol = await this.d.store.getVolume(volume)
        // Only a pull that went to the end of the peer's log counts (not one that found the
        // peer no member, or the volume offline, and returned at once); for a wannabe, only the
        // log of a member whose own index is complete (a fellow wannabe that has not caught up
        // yet may hold nothing: its empty log made a wannabe steady without a file).
        if ((vol?.state === 'copy' && ranComplete) || (vol?.state === 'merge' && fullDone && this.d.states.isVerified(volume))) {
          this.d.states.markCaughtUp(volume)
          this.d.kickCopy(volume)
        }
        state.mode = 'sync'
        state.failures = 0
        state.lastError = undefined
        state.lastSyncAt = Date.now()
      } catch (err) {
        if (this.d.stopped()) return
        state.failures++
        state.lastError = (err as Error).message
        const delay = Math.min(RETRY_MIN_MS * 2 ** (state.failures - 1), RETRY_MAX_MS)
        log('pull %s from %s failed (retry in %d ms): %s', volume, peer, delay, state.lastError)
        state.retryTimer = setTimeout(() => { if (this.d.peers.isConnected(peer)) this.schedule(volume, peer, state.mode) }, delay)
        state.retryTimer.unref()
      } finally {
        state.running = undefined
      }
    })()
  }

  /**
   * Pulls to the end of the peer's log: `complete` if the peer said its index is complete on
   * the last page, `ended` if not, `none` if there was nothing to pull from there.
   */
  private async pull (volume: string, peer: string, state: PullState, full: boolean): Promise<'none' | 'ended' | 'complete'> {
    const { store, signal, selfId, states } = this.d
    const vol = await store.getVolume(volume)
    // A reader pulls as a member does (grants.ts); only members are pulled from.
    if (vol === undefined || !vol.members.includes(peer) || !holds(vol, selfId) || vol.state === 'removed') return 'none'
    if (states.offline.has(volume)) return 'none'
    let complete = false
    let since = full ? 0 : await store.getWatermark(volume, peer)
    let first = true
    // The next index page is asked for while this one's chunks are fetched and committed.
    let prefetched: Promise<IndexPage> | undefined
    while (!signal.aborted) {
      let page
      try {
        page = await (prefetched ?? this.d.fetchPage(peer, { volume, volumeId: vol.id, since, count: first, scan: full }, signal))
        prefetched = undefined
      } catch (err) {
        prefetched = undefined
        if ((err as { code?: string }).code !== Codes.LOG_COMPACTED) throw err
        // Our watermark is below what the peer still has: compare the full index instead.
        log('%s from %s: %s', volume, peer, (err as Error).message)
        this.d.recordDecision(volume, peer, 'copy', (err as Error).message)
        state.mode = 'copy'
        full = true
        since = 0
        continue
      }
      this.d.remotes.setHead(volume, peer, page.head)
      if (page.more) {
        prefetched = this.d.fetchPage(peer, { volume, volumeId: vol.id, since: page.last, count: false, scan: full }, signal)
        // Awaited (and its error handled) by the next turn of this loop; this only keeps an early
        // rejection from counting as unhandled meanwhile.
        prefetched.catch((e: Error) => { log('prefetch of %s from %s failed: %s', volume, peer, e.message) })
      }
      if (page.pending !== undefined) state.pending = { ...page.pending }
      first = false
      await this.apply(volume, peer, page, full)
      if (state.pending !== undefined) {
        for (const rec of page.records) {
          if (rec.deleted) continue
          state.pending.files = Math.max(0, state.pending.files - 1)
          state.pending.bytes = Math.max(0, state.pending.bytes - rec.size)
        }
      }
      since = page.last
      if (!page.more) { complete = page.complete; break }
    }
    state.pending = undefined
    if (signal.aborted) return 'none'
    return complete ? 'complete' : 'ended'
  }

  /** Fetches the chunks one page needs, then commits its records and the new watermark. */
  private async apply (volume: string, peer: string, page: IndexPage, full: boolean): Promise<void> {
    const { store, signal, states } = this.d
    // Decide once outside the commit to learn which chunks to fetch; decide again inside it.
    const needed: Uint8Array[] = []
    for (const rec of page.records) {
      for (const { record: r } of await reconcileRecord(async path => await store.getFile(volume, path), rec)) {
        // One push per hash: spreading a long file's list (100k+ chunks) overflows the stack.
        if (!r.deleted) for (const h of chunkHashes(r)) needed.push(h)
      }
    }
    // A wannabe takes the index first and lets the background copy bring the chunks. Once it
    // holds the full index, it fetches later updates before committing them, as a steady
    // member does: otherwise a copy under continuous writes chases new files and never ends.
    let repair = false
    const current = await store.requireVolume(volume)
    const inline = current.state !== 'copy' || (!full && states.isCaughtUp(volume))
    if (needed.length > 0 && inline) {
      try {
        await this.d.fetcher.fetch(current, needed, this.d.sources(current, peer), { signal })
      } catch (err) {
        if (signal.aborted) throw err
        // A member that cannot apply an update does not stay silently behind: it takes the
        // new records (so it never serves the stale content as current), marks the volume
        // for repair, and the background copy fetches what is missing, retrying.
        log.error('%s: chunks of an update from %s could not be fetched (%s): repairing in the background', volume, peer, (err as Error).message)
        repair = true
      }
    }
    // Inside the commit a conflict copy is made only of bytes held here (reconcile.ts decide).
    const holds = holdsChunks(store.chunks)
    await store.commitFiles(volume, async (ctx) => {
      const out: NewFileRecord[] = []
      const staged = new Map<string, FileRecord>()
      for (const rec of page.records) {
        for (const { record: r, cause } of await reconcileRecord(async path => staged.get(path) ?? await ctx.get(path), rec, holds)) {
          out.push(r)
          staged.set(r.path, { ...r, seq: 0 })
          ctx.cause(r.path, cause)
        }
      }
      ctx.setWatermark(peer, page.last)
      return out
    }, 'remoteApply')
    if (repair) states.startRepair(volume)
    if (states.repairing.has(volume)) this.d.kickCopy(volume)
  }

  /** The pull from `peer` as status shows it. */
  viewOf (volume: string, peer: string): { syncing: boolean, lastSyncAt: number | null, lastError: string | null } {
    const st = this.pulls.get(`${volume}\x00${peer}`)
    return { syncing: st?.running !== undefined, lastSyncAt: st?.lastSyncAt ?? null, lastError: st?.lastError ?? null }
  }

  /** A minicopy or full index comparison under way for `volume`, if any. */
  catchingUp (volume: string): 'minicopy' | 'copy' | undefined {
    for (const [key, st] of this.pulls) {
      if (key.startsWith(`${volume}\x00`) && st.running !== undefined && (st.mode === 'minicopy' || st.mode === 'copy')) return st.mode
    }
    return undefined
  }

  /** What this node still lacks of a volume, summed over the pulls under way. */
  pending (volume: string): { files: number, bytes: number } {
    let files = 0
    let bytes = 0
    for (const [key, st] of this.pulls) {
      if (!key.startsWith(`${volume}\x00`) || st.pending === undefined) continue
      files += st.pending.files
      bytes += st.pending.bytes
    }
    return { files, bytes }
  }

  /** Cancels the retries and waits for the pulls under way (the engine has aborted them). */
  async settle (): Promise<void> {
    for (const st of this.pulls.values()) clearTimeout(st.retryTimer)
    await Promise.allSettled([...this.pulls.values()].map(async st => await st.running))
  }
}
