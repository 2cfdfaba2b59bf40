import { newCounters, type ChunkFetcher, type FetchCounters } from './chunk-fetcher.js'
import { chunkHashes, type VolumeRecord } from '../core/records.js'
import { ReplicantError, Codes } from '../core/errors.js'
import { hashHex } from '../store/chunk-store.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { OnDemandReader } from './on-demand.js'

const log = logger('copy')

/** Missing chunks gathered before a fetch round. */
const ROUND_CHUNKS = 256
/**
 * Hashes per want-list: a whole want-list (64, 4 frames), now that the holder serves a reader's
 * want-list ahead of bulk frames (protocols/serve-lanes.ts): a reader waits behind at most one
 * bulk frame whatever the want-list's length. 16 (one frame a stream) cost a stream per MiB:
 * bench wannabe, medians of 3, 16 -> 64: copy 26.9 -> 32.7 MB/s, CPU A+B 17.0 -> 13.7 s.
 */
const COPY_WANT_MAX = 64
const RETRY_MIN_MS = 500
const RETRY_MAX_MS = 30_000
/** While readers wait, copy rounds pause up to this long before going on with one want-list. */
const YIELD_MAX_MS = 200

export interface CopyProgress {
  filesTotal: number
  filesDone: number
  bytesTotal: number
  bytesDone: number
  /** Bytes per second fetched by the copy since it started. */
  rate: number | null
  etaSeconds: number | null
  startedAt: number
  lastError: string | null
  /**
   * Chunks the last failed round could get from no reachable member, and (up to
   * UNAVAILABLE_PATHS of) the files that need them: a copy or merge that cannot finish says
   * what it lacks instead of waiting silently. null once a round gets everything it asked for.
   */
  unavailable: { chunks: number, paths: string[] } | null
}

/** Paths named in `unavailable` (status stays small when much is lacking). */
const UNAVAILABLE_PATHS = 16

/**
 * The background copy of a member in `copy` state (a wannabe): it walks the index, fetches
 * every chunk the node lacks from the members that hold it, and, once a pass finds nothing
 * missing and the index is caught up, moves the member to `steady`.
 *
 * States per volume: idle -> running (counting pass, then fetch rounds) -> idle; `again` set
 * by a kick during a run makes it pass once more; failures retry with backoff. Nothing is
 * kept of where it stopped: a restart recounts, and chunks already held are never fetched
 * again, so it resumes where it was. Readers come first: copy rounds wait while on-demand
 * fetches are in flight, and use small want-lists.
 */
export class BackgroundCopy {
  readonly counters: FetchCounters = newCounters()
  private readonly runs = new Map<string, { running: Promise<void> | undefined, again: boolean, failures: number, timer: NodeJS.Timeout | undefined }>()
  private readonly progress = new Map<string, CopyProgress>()
  private readonly controller = new AbortController()
  private stopped = false

  constructor (
    private readonly store: Store,
    private readonly fetcher: ChunkFetcher,
    private readonly reader: OnDemandReader,
    private readonly sources: (vol: VolumeRecord) => string[],
    /** Whether the index of `volume` is caught up with a member since it entered copy state. */
    private readonly indexCaughtUp: (volume: string) => boolean,
    private readonly onSteady: (volume: string) => Promise<void>,
    readonly concurrency = 4,
    /** A steady volume that needs chunks fetched (a failed update being repaired). */
    private readonly repairing: (volume: string) => boolean = () => false
  ) {}

  progressOf (volume: string): CopyProgress | undefined {
    return this.progress.get(volume)
  }

  stop (): void {
    this.stopped = true
    this.controller.abort()
    for (const r of this.runs.values()) clearTimeout(r.timer)
  }

  async settled (): Promise<void> {
    await Promise.allSettled([...this.runs.values()].map(async r => await r.running))
  }

  /** With concurrency 0 the copy never runs: the member stays a lazy replica that fetches only what is read. */
  kick (volume: string): void {
    if (this.stopped || (this.concurrency <= 0 && !this.repairing(volume))) return
    let run = this.runs.get(volume)
    if (run === undefined) {
      run = { running: undefined, again: false, failures: 0, timer: undefined }
      this.runs.set(volume, run)
    }
    if (run.running !== undefined) { run.again = true; return }
    clearTimeout(run.timer)
    const r = run
    r.running = (async () => {
      try {
        do {
          r.again = false
          await this.pass(volume)
        } while (r.again && !this.stopped)
        r.failures = 0
      } catch (err) {
        if (this.stopped) return
        r.failures++
        const p = this.progress.get(volume)
        if (p !== undefined) p.lastError = (err as Error).message
        const delay = Math.min(RETRY_MIN_MS * 2 ** (r.failures - 1), RETRY_MAX_MS)
        log('copy of %s failed (retry in %d ms): %s', volume, delay, (err as Error).message)
        r.timer = setTimeout(() => { this.kick(volume) }, delay)
        r.timer.unref()
      } finally {
        r.running = undefined
      }
    })()
  }

  private async pass (volume: string): Promise<void> {
    const vol = await this.store.getVolume(volume)
    if (vol === undefined || (vol.state !== 'copy' && vol.state !== 'merge' && !this.repairing(volume))) return
    // Read before the count: a pull that ends during the count commits records the count may
    // not have seen, then marks the index caught up; read after, that mark made a wannabe
    // steady on a count without those files' chunks.
    const caughtUp = this.indexCaughtUp(volume)
    const progress = await this.count(vol)
    if (progress.bytesDone === progress.bytesTotal && progress.filesDone === progress.filesTotal) {
      if (caughtUp) {
        await this.onSteady(volume)
        log('volume %s is steady', volume)
      }
      return
    }
    let round: Uint8Array[] = []
    // Which file needs each hash of the round (bounded by ROUND_CHUNKS), to name what is lacking.
    let pathOf = new Map<string, string>()
    for await (const rec of this.store.listFiles(volume, '/', { signal: this.controller.signal })) {
      if (rec.deleted || rec.size === 0) continue
      const hashes = [...chunkHashes(rec)]
      const have = await this.store.chunks.hasMany(hashes)
      const missing = hashes.filter((_, i) => !have[i])
      if (missing.length === 0) continue
      // A long file is cut into rounds too (and no spread: 100k+ hashes overflow the stack).
      for (const h of missing) {
        round.push(h)
        pathOf.set(hashHex(h), rec.path)
        if (round.length >= ROUND_CHUNKS) {
          await this.fetchRound(vol, round, progress, pathOf)
          round = []
          pathOf = new Map()
        }
      }
    }
    if (round.length > 0) await this.fetchRound(vol, round, progress, pathOf)
    // Another pass confirms nothing is missing (and catches writes that came meanwhile).
    const again = this.runs.get(volume)
    if (again !== undefined) again.again = true
  }

  /** How many live files of `volume` lack a chunk here (a steady replica checks itself at start). */
  async lacks (volume: string): Promise<number> {
    let n = 0
    for await (const rec of this.store.listFiles(volume, '/', { signal: this.controller.signal })) {
      if (rec.deleted || rec.size === 0) continue
      if (!(await this.store.chunks.hasMany([...chunkHashes(rec)])).every(Boolean)) n++
    }
    return n
  }

  private async count (vol: VolumeRecord): Promise<CopyProgress> {
    const prev = this.progress.get(vol.name)
    const p: CopyProgress = {
      filesTotal: 0, filesDone: 0, bytesTotal: 0, bytesDone: 0, rate: null, etaSeconds: null,
      startedAt: prev?.startedAt ?? Date.now(), lastError: null, unavailable: prev?.unavailable ?? null
    }
    for await (const rec of this.store.listFiles(vol.name, '/', { signal: this.controller.signal })) {
      if (rec.deleted) continue
      p.filesTotal++
      p.bytesTotal += rec.size
      const hashes = [...chunkHashes(rec)]
      const have = await this.store.chunks.hasMany(hashes)
      let held = 0
      have.forEach((h, i) => { if (h) held += Math.min(rec.chunkSize, rec.size - i * rec.chunkSize) })
      p.bytesDone += held
      if (held === rec.size) p.filesDone++
    }
    // Everything held: nothing is lacking any more (a record that needed it was superseded).
    if (p.bytesDone === p.bytesTotal) p.unavailable = null
    this.progress.set(vol.name, p)
    this.updateRate(p)
    return p
  }

  private async fetchRound (vol: VolumeRecord, hashes: Uint8Array[], progress: CopyProgress, pathOf: ReadonlyMap<string, string>): Promise<void> {
    const waitStart = Date.now()
    while (this.reader.active > 0 && Date.now() - waitStart < YIELD_MAX_MS && !this.stopped) {
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    const before = this.counters.bytesReceived
    try {
      await this.fetcher.fetch(vol, hashes, this.sources(vol), {
        signal: this.controller.signal,
        wantMax: COPY_WANT_MAX,
        inFlight: Math.max(1, this.concurrency),
        counters: this.counters,
        source: 'copy',
        // Readers first: while on-demand fetches wait, at most one copy want-list is sent at a time.
        yieldWhile: () => this.reader.active > 0
      })
      progress.unavailable = null
    } catch (err) {
      if (err instanceof ReplicantError && err.code === Codes.CHUNK_MISSING) {
        const have = await this.store.chunks.hasMany(hashes)
        const lacking = hashes.filter((_, i) => !have[i])
        const paths = [...new Set(lacking.map(h => pathOf.get(hashHex(h))).filter((p): p is string => p !== undefined))].sort()
        progress.unavailable = { chunks: lacking.length, paths: paths.slice(0, UNAVAILABLE_PATHS) }
        throw new ReplicantError(Codes.CHUNK_MISSING, `${err.message}; needed by ${paths.slice(0, 4).join(', ')}${paths.length > 4 ? ` and ${paths.length - 4} more file(s)` : ''}`, { ...err.details, paths: paths.slice(0, UNAVAILABLE_PATHS) })
      }
      throw err
    }
    progress.bytesDone = Math.min(progress.bytesTotal, progress.bytesDone + this.counters.bytesReceived - before)
    this.updateRate(progress)
  }

  private updateRate (p: CopyProgress): void {
    const secs = (Date.now() - p.startedAt) / 1000
    p.rate = secs > 0 ? this.counters.bytesReceived / secs : null
    p.etaSeconds = p.rate !== null && p.rate > 0 ? Math.ceil((p.bytesTotal - p.bytesDone) / p.rate) : null
  }
}
