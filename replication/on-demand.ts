import { ReplicantError, Codes } from '../core/errors.js'
import { hashHex } from '../store/chunk-store.js'
import { newCounters, type ChunkFetcher, type FetchCounters } from './chunk-fetcher.js'
import type { Store } from '../store/store.js'
import type { VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'

const log = logger('read')

/** How long a read waits for a chunk this node lacks before it fails with TIMEOUT. */
export const DEFAULT_READ_TIMEOUT_MS = 10_000

interface InFlight {
  promise: Promise<Uint8Array>
  controller: AbortController
  waiters: number
  settled: boolean
}

/**
 * Chunks for reads: from the store when held, otherwise fetched at once from the members that
 * hold them (a wannabe's on-demand read). Concurrent readers of one chunk share one fetch,
 * reference counted: when the last of them gives up, the fetch is cancelled. Every fetch has
 * a timeout, so a chunk nobody can supply gives a clear error instead of a hang.
 */
export class OnDemandReader {
  readonly counters: FetchCounters & { joined: number, cancelled: number, reads: number } = { ...newCounters(), joined: 0, cancelled: 0, reads: 0 }
  private readonly inflight = new Map<string, InFlight>()

  constructor (
    private readonly store: Store,
    private readonly fetcher: ChunkFetcher,
    private readonly sources: (vol: VolumeRecord) => string[],
    readonly timeoutMs = DEFAULT_READ_TIMEOUT_MS
  ) {}

  /** Fetches in progress for readers; background work yields to them. */
  get active (): number { return this.inflight.size }

  async get (vol: VolumeRecord, hash: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
    const local = await this.store.chunks.get(hash)
    if (local !== undefined) return local
    if (signal?.aborted === true) throw new ReplicantError(Codes.ABORTED, 'read aborted')
    const key = `${vol.name}\x00${hashHex(hash)}`
    let entry = this.inflight.get(key)
    if (entry === undefined) {
      entry = this.start(vol, hash, key)
    } else {
      this.counters.joined++
    }
    const e = entry
    e.waiters++
    try {
      return await abortable(e.promise, signal)
    } finally {
      e.waiters--
      if (e.waiters === 0 && !e.settled) {
        this.counters.cancelled++
        e.controller.abort(new ReplicantError(Codes.ABORTED, 'every reader of this chunk went away'))
      }
    }
  }

  private start (vol: VolumeRecord, hash: Uint8Array, key: string): InFlight {
    const controller = new AbortController()
    const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(this.timeoutMs)])
    this.counters.reads++
    const entry: InFlight = { promise: Promise.resolve(new Uint8Array()), controller, waiters: 0, settled: false }
    // In the map before the fetch starts: a fetch that fails before its first await (no member
    // reachable) runs its finally synchronously, and a delete before the insert left the
    // rejected entry in the map for good (every later read failed at once, `active` stuck > 0).
    this.inflight.set(key, entry)
    const t0 = performance.now()
    entry.promise = (async () => {
      try {
        const sources = this.sources(vol)
        if (sources.length === 0) {
          throw new ReplicantError(Codes.CHUNK_MISSING, `chunk ${hashHex(hash)} of volume '${vol.name}' is not held here and no other member is reachable`,
            { chunk: hashHex(hash), tried: [] })
        }
        await this.fetchRetrying(vol, hash, sources, signal)
        const bytes = await this.store.chunks.get(hash)
        if (bytes === undefined) throw new ReplicantError(Codes.CHUNK_MISSING, `chunk ${hashHex(hash)} vanished after it was fetched`)
        return bytes
      } finally {
        entry.settled = true
        if (this.inflight.get(key) === entry) this.inflight.delete(key)
      }
    })()
    entry.promise.catch(() => {}) // surfaced to every waiter
    entry.promise.then(() => { this.fetcher.sink?.onDemandRead(vol.name, (performance.now() - t0) / 1000, true) }, () => { this.fetcher.sink?.onDemandRead(vol.name, (performance.now() - t0) / 1000, false) })
    return entry
  }

  private async fetchRetrying (vol: VolumeRecord, hash: Uint8Array, sources: string[], signal: AbortSignal): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.fetcher.fetch(vol, [hash], sources, { signal, wantMax: 1, counters: this.counters, source: 'on-demand', reader: true })
        return
      } catch (err) {
        const failed = (err as ReplicantError).details?.failed
        if (!(err instanceof ReplicantError) || err.code !== Codes.CHUNK_MISSING || !Array.isArray(failed) || failed.length === 0 || signal.aborted) throw err
        log('read of %s: %s (retrying)', hashHex(hash), err.message)
        await new Promise(resolve => setTimeout(resolve, Math.min(RETRY_MIN_MS * 2 ** attempt, RETRY_MAX_MS)))
        if (signal.aborted) throw err
      }
    }
  }
}

/**
 * A read's fetch is retried, after a short backoff and until the read's own timeout, while a
 * member failed to answer (a reset stream, a lost reply, a busy holder) rather than said it
 * lacks the chunk: one lost reply on a loaded link must not fail a read of a chunk that is there.
 */
const RETRY_MIN_MS = 50
const RETRY_MAX_MS = 1000

async function abortable<T> (promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal === undefined) return await promise
  signal.throwIfAborted()
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(new ReplicantError(Codes.ABORTED, 'read aborted'))
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort!)
  }
}
