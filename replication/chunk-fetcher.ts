import type { Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { wantChunks, BadChunkError } from '../protocols/chunk-protocol.js'
import { CHUNK_WANT_MAX, CHUNK_REQUESTS_IN_FLIGHT, MAX_BAD_CHUNKS } from '../protocols/constants.js'
import { ReplicantError, Codes } from '../core/errors.js'
import { hashHex } from '../store/chunk-store.js'
import { byteLengthOf, type ChunkBytes } from '../core/hash.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { VolumeRecord } from '../core/records.js'
import type { TransferSink, TransferSource } from '../core/telemetry.js'
import type { HolderChoice } from './holder-choice.js'

const log = logger('fetch')

/** Verified chunks written to the store per batch (one positional writev and one level batch). */
const PUT_BATCH = 32

export interface FetchCounters { chunksReceived: number, bytesReceived: number, badChunks: number, requests: number }

export interface FetchOptions {
  signal?: AbortSignal
  /** Hashes per want-list (at most CHUNK_WANT_MAX): smaller keeps a peer's reply queue short. */
  wantMax?: number
  /** Want-lists in flight at once. */
  inFlight?: number
  /** Extra counters to add this fetch's traffic to (on-demand, background copy, ...). */
  counters?: FetchCounters
  /** What this fetch is for, in metrics (default pull). */
  source?: TransferSource
  /**
   * Background work: while this returns true (readers are waiting), no new want-list is sent
   * except by one worker, and that one only after waiting up to YIELD_MAX_MS; so at most one
   * want-list of bulk traffic is queued ahead of a reader's want on the connection.
   */
  yieldWhile?: () => boolean
  /** A reader waits on this fetch: its want-lists are flagged so the holder serves them before bulk frames. */
  reader?: boolean
}

/** How long the one remaining background worker waits for readers before sending its next want-list. */
const YIELD_MAX_MS = 100

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

export function newCounters (): FetchCounters {
  return { chunksReceived: 0, bytesReceived: 0, badChunks: 0, requests: 0 }
}

/**
 * Fetches chunks a node lacks from the members that hold them: want-lists of at most
 * CHUNK_WANT_MAX hashes, CHUNK_REQUESTS_IN_FLIGHT of them at once (the credit window that
 * bounds buffered bytes), each chunk verified by the protocol layer and written to the store
 * as it arrives. A hash a peer lacks, or a request that fails, is retried on the next
 * candidate peer. A peer that sends MAX_BAD_CHUNKS bad chunks is hung up on and shunned.
 */
export class ChunkFetcher {
  readonly counters: FetchCounters = { chunksReceived: 0, bytesReceived: 0, badChunks: 0, requests: 0 }
  private readonly badByPeer = new Map<string, number>()
  private readonly shunnedUntil = new Map<string, number>()

  /** @param holders told of every request to a holder and its answer (holder-choice.ts spreads the next ones). */
  constructor (private readonly libp2p: Libp2p, private readonly store: Store, readonly sink?: TransferSink, private readonly holders?: HolderChoice) {}

  /** Clears a peer's record of bad chunks (an operator who fixed it, or a test). */
  forgive (peer: string): void {
    this.badByPeer.delete(peer)
    this.shunnedUntil.delete(peer)
  }

  isShunned (peer: string): boolean {
    const until = this.shunnedUntil.get(peer)
    return until !== undefined && until > Date.now()
  }

  /** Makes every hash in `hashes` present in the store, or throws CHUNK_MISSING naming what is lacking. */
  async fetch (vol: VolumeRecord, hashes: Uint8Array[], peers: string[], opts: FetchOptions = {}): Promise<void> {
    // Held ones are not fetched: keep them from GC until the records that need them commit.
    this.store.touchChunks(hashes)
    const have = await this.store.chunks.hasMany(hashes)
    let missing = dedupe(hashes.filter((_, i) => !have[i]))
    const tried: string[] = []
    // Peers whose want-list failed (reset, dropped reply, an error other than a refusal) rather
    // than answered that they lack a chunk: what they did not send may still be there
    // (on-demand.ts retries).
    const failed = new Set<string>()
    for (const peer of peers) {
      if (missing.length === 0) return
      if (this.isShunned(peer)) continue
      tried.push(peer)
      const asked = missing.length
      this.holders?.begin(peer)
      try {
        missing = await this.fetchFrom(vol, peer, missing, opts, failed)
        this.holders?.end(peer, asked, asked - missing.length, (asked - missing.length) * vol.chunkSize)
      } catch (err) {
        this.holders?.end(peer, 0, 0, 0)
        if (opts.signal?.aborted === true && !(err instanceof ReplicantError && err.code === Codes.CHUNK_MISSING)) {
          const reason = opts.signal.reason as { name?: string } | undefined
          if (reason?.name === 'TimeoutError') {
            throw new ReplicantError(Codes.TIMEOUT, `timed out fetching ${missing.length} chunk(s) of volume '${vol.name}' (tried ${tried.join(', ')})`,
              { chunks: missing.slice(0, 8).map(hashHex), tried })
          }
        }
        throw err
      }
    }
    if (missing.length > 0) {
      throw new ReplicantError(Codes.CHUNK_MISSING, `${missing.length} chunk(s) of volume '${vol.name}' not available from ${tried.length === 0 ? 'any reachable member' : tried.join(', ')}`,
        { chunks: missing.slice(0, 8).map(hashHex), tried, failed: [...failed] })
    }
  }

  /** Asks one peer for `hashes`; returns the ones still missing afterwards. */
  private async fetchFrom (vol: VolumeRecord, peer: string, hashes: Uint8Array[], opts: FetchOptions, failed: Set<string>): Promise<Uint8Array[]> {
    const peerId = peerIdFromString(peer)
    const wantMax = Math.max(1, Math.min(opts.wantMax ?? CHUNK_WANT_MAX, CHUNK_WANT_MAX))
    const batches: Uint8Array[][] = []
    for (let i = 0; i < hashes.length; i += wantMax) batches.push(hashes.slice(i, i + wantMax))
    const left: Uint8Array[] = []
    let next = 0
    const worker = async (k: number): Promise<void> => {
      while (next < batches.length) {
        if (opts.yieldWhile !== undefined) {
          const start = Date.now()
          // A waiting worker also stops waiting once the others have taken every batch.
          while (next < batches.length && opts.yieldWhile() && opts.signal?.aborted !== true && (k > 0 || Date.now() - start < YIELD_MAX_MS)) await sleep(2)
          if (next >= batches.length) break
        }
        const batch = batches[next++]
        const { got, failed: batchFailed } = await this.fetchBatch(vol, peerId, batch, opts)
        if (batchFailed) failed.add(peer)
        for (const h of batch) if (!got.has(hashHex(h))) left.push(h)
      }
    }
    await Promise.all(Array.from({ length: Math.min(opts.inFlight ?? CHUNK_REQUESTS_IN_FLIGHT, batches.length) }, (_, k) => worker(k)))
    return left
  }

  /**
   * The chunks one want-list brought, and whether it failed (reset, lost reply: worth asking
   * again). Ending as the protocol says, or refused by the peer with a typed answer (no longer
   * a member, volume gone: asking again gets the same answer), is no failure.
   */
  private async fetchBatch (vol: VolumeRecord, peer: PeerId, batch: Uint8Array[], opts: FetchOptions): Promise<{ got: Set<string>, failed: boolean }> {
    const got = new Set<string>()
    let failed = false
    const pending: Array<{ hash: Uint8Array, bytes: ChunkBytes }> = []
    const all = opts.counters !== undefined ? [this.counters, opts.counters] : [this.counters]
    for (const c of all) c.requests++
    try {
      for await (const item of wantChunks(this.libp2p, peer, { volume: vol.name, volumeId: vol.id, hashes: batch, reader: opts.reader }, vol.chunkSize, opts.signal)) {
        if (item.bytes === undefined) continue
        pending.push({ hash: item.hash, bytes: item.bytes })
        got.add(hashHex(item.hash))
        const n = byteLengthOf(item.bytes)
        for (const c of all) {
          c.chunksReceived++
          c.bytesReceived += n
        }
        this.sink?.received(vol.name, opts.source ?? 'pull', n)
        if (pending.length >= PUT_BATCH) await this.store.chunks.putMany(pending.splice(0))
      }
    } catch (err) {
      failed = !(err instanceof ReplicantError && REFUSALS.has(err.code))
      if (err instanceof BadChunkError) {
        for (const c of all) c.badChunks++
        this.penalise(peer.toString(), err)
      } else if (opts.signal?.aborted === true) throw err
      else log('want-list to %p failed: %s', peer, (err as Error).message)
    } finally {
      if (pending.length > 0) await this.store.chunks.putMany(pending)
    }
    return { got, failed }
  }

  private penalise (peer: string, err: BadChunkError): void {
    const n = (this.badByPeer.get(peer) ?? 0) + 1
    this.badByPeer.set(peer, n)
    log.error('bad chunk from %s (%d of %d allowed): %s', peer, n, MAX_BAD_CHUNKS, err.message)
    if (n >= MAX_BAD_CHUNKS) {
      this.shunnedUntil.set(peer, Date.now() + 10 * 60_000)
      this.badByPeer.delete(peer)
      void this.libp2p.hangUp(peerIdFromString(peer)).catch((e: Error) => { log('hang up on %s: %s', peer, e.message) })
    }
  }
}

/** Answers that say the peer will not serve this volume to us: a retry gets the same answer. */
const REFUSALS = new Set<string>([Codes.NOT_A_MEMBER, Codes.NOT_A_READER, Codes.VOLUME_NOT_FOUND, Codes.VOLUME_ID_MISMATCH, Codes.VOLUME_REMOVED, Codes.VOLUME_REFUSED])

function dedupe (hashes: Uint8Array[]): Uint8Array[] {
  const seen = new Set<string>()
  return hashes.filter(h => { const k = hashHex(h); if (seen.has(k)) return false; seen.add(k); return true })
}
