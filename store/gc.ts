import { hashHex } from '../core/hash.js'
import { crashPoint } from '../core/crash-points.js'
import { chunkHashes } from '../core/records.js'
import { noRepack, type ChunkStore, type RepackOptions, type RepackResult } from './chunk-store.js'
import type { PreparedWrites } from './prepared.js'
import { DEFAULT_YOUNG_MS, type YoungChunks } from './young-chunks.js'
import { refKey, type StoreContext } from './store-context.js'

/** What collectGarbage did: the chunks it deleted, then the repack that gave their space back. */
export interface GcResult { scanned: number, deleted: number, kept: number, repack: RepackResult }

/** Chunks deleted per batch: a crash in the middle loses only unreferenced chunks. */
const SWEEP_BATCH = 256

/**
 * Chunk reference counts and what is built on them: garbage collection of unreferenced chunks
 * and the repack of the space they leave in pack files.
 */
export class ChunkCollector {
  constructor (
    private readonly ctx: StoreContext,
    private readonly chunks: ChunkStore,
    private readonly young: YoungChunks,
    private readonly prepared: PreparedWrites
  ) {}

  /**
   * Chunk garbage collection: deletes every chunk that no live record of any volume, no
   * version kept for a snapshot, no prepared all-mode write and no write in progress
   * references. Marking runs under the commit mutex (no reference changes meanwhile); chunks
   * written in the last `youngMs` are left for a later run, so a put or fetch whose index batch
   * has not landed yet keeps its chunks. Deletion goes in small batches of unreferenced chunks
   * only, so a crash in the middle loses nothing still referenced; a rerun finishes the job.
   * It drops the chunks' locations; then (unless `repack: false`) a repack gives the pack
   * space back.
   */
  async collectGarbage (opts: { youngMs?: number, signal?: AbortSignal, repack?: boolean | RepackOptions } = {}): Promise<GcResult> {
    this.ctx.assertOpen()
    return await this.ctx.maintenance.run(async () => {
      this.ctx.assertOpen()
      const marked = await this.ctx.mutex.run(async () => await this.deleteUnreferenced(opts.youngMs ?? DEFAULT_YOUNG_MS, opts.signal))
      const repack = opts.repack === false ? noRepack() : await this.runRepack({ ...(typeof opts.repack === 'object' ? opts.repack : {}), signal: opts.signal })
      return { ...marked, repack }
    })
  }

  /** GC's mark and sweep (the caller holds the commit mutex). */
  private async deleteUnreferenced (youngMs: number, signal?: AbortSignal): Promise<{ scanned: number, deleted: number, kept: number }> {
    const referenced = new Set<string>()
    for await (const key of this.ctx.sub.refs.keys()) referenced.add(Buffer.from(key).subarray(0, 32).toString('hex'))
    for (const p of await this.prepared.listPrepared()) for (const h of chunkHashes(p.record)) referenced.add(hashHex(h))
    this.young.addYoung(referenced, youngMs)
    let scanned = 0
    let deleted = 0
    let batch: Uint8Array[] = []
    // A put or fetch that found a chunk already stored marks it young before it looks (touch,
    // then has): one that did so after the mark is honoured here, right before each delete.
    const sweep = async (): Promise<void> => {
      const gone = batch.filter(h => !this.young.has(hashHex(h)))
      await this.chunks.delete(gone)
      deleted += gone.length
      if (gone.length > 0) crashPoint('gc-sweep')
      batch = []
    }
    for await (const key of this.chunks.keys()) {
      signal?.throwIfAborted()
      scanned++
      if (referenced.has(hashHex(key))) continue
      batch.push(Buffer.from(key))
      if (batch.length >= SWEEP_BATCH) await sweep()
    }
    if (batch.length > 0) await sweep()
    return { scanned, deleted, kept: scanned - deleted }
  }

  /**
   * Gives the pack space of deleted chunks back (see PackChunkStore.repack; nothing to do for
   * the level backend). It runs under the GC lock, so GC and repack never interleave, but not
   * under the commit mutex: it changes no record or reference, only chunk locations, each
   * switched compare-and-set after its copy is synced, so writes go on during a repack that
   * may copy for minutes. close() stops it at its next batch.
   */
  async repack (opts: RepackOptions = {}): Promise<RepackResult> {
    this.ctx.assertOpen()
    return await this.ctx.maintenance.run(async () => {
      this.ctx.assertOpen()
      return await this.runRepack(opts)
    })
  }

  private async runRepack (opts: RepackOptions): Promise<RepackResult> {
    if (this.chunks.repack === undefined) return noRepack()
    const closing = this.ctx.closingSignal
    const signal = opts.signal === undefined ? closing : AbortSignal.any([opts.signal, closing])
    return await this.chunks.repack({ ...opts, signal })
  }

  /** How many live file records reference `hash`, in `volume` or (without it) in all volumes. */
  async refCount (hash: Uint8Array, volume?: string): Promise<number> {
    this.ctx.assertOpen()
    if (volume !== undefined) return await this.ctx.sub.refs.get(refKey(hash, volume)) ?? 0
    let n = 0
    const h = Buffer.from(hash)
    for await (const count of this.ctx.sub.refs.values({ gte: h, lt: Buffer.concat([h, Buffer.from([0xff])]) })) n += count
    return n
  }

  /** Which of `hashes` are referenced by a live record of `volume` (what a member may be served). */
  async referencedIn (volume: string, hashes: Uint8Array[]): Promise<boolean[]> {
    this.ctx.assertOpen()
    if (hashes.length === 0) return []
    return await this.ctx.sub.refs.hasMany(hashes.map(h => refKey(h, volume)))
  }
}
