import type { AbstractSublevel } from 'abstract-level'
import type { Level } from 'level'

import { joined, type ChunkBytes } from '../core/hash.js'

// The hash helpers live in core (every layer names chunks); re-exported for existing callers.
export { sha256, hashHex, type ChunkBytes } from '../core/hash.js'

/**
 * Immutable content-addressed chunk bytes. The one interface behind which the storage choice
 * (level values, files, packs) lives; see docs/ARCHITECTURE.md for the measured choice.
 *
 * Durability contract: put() need not be durable on return; sync() makes every earlier put
 * durable. The index batch that references chunks is written only after sync().
 */
export interface ChunkStore {
  has: (hash: Uint8Array) => Promise<boolean>
  hasMany: (hashes: Uint8Array[]) => Promise<boolean[]>
  get: (hash: Uint8Array) => Promise<Uint8Array | undefined>
  getMany: (hashes: Uint8Array[]) => Promise<Array<Uint8Array | undefined>>
  /** Bytes in pieces (as they came off the wire) are written as they are where the backend can (packs). */
  putMany: (chunks: Array<{ hash: Uint8Array, bytes: ChunkBytes }>) => Promise<void>
  sync: () => Promise<void>
  /**
   * sync() without its own level write: the locations come back as batch operations (on a
   * sublevel of the index database) for the caller's synced batch; `written(ok)` once it
   * returned. Backends whose sync() writes nothing omit it.
   */
  syncInto?: () => Promise<{ ops: ChunkLocationOp[], written: (ok: boolean) => void }>
  delete: (hashes: Uint8Array[]) => Promise<void>
  keys: () => AsyncIterable<Uint8Array>
  /** Gives the disk space of deleted chunks back (pack files); backends without packs omit it. */
  repack?: (opts?: RepackOptions) => Promise<RepackResult>
}

export interface RepackOptions {
  /** Rewrite a pack when its live bytes are below this fraction of its size (default 0.5). */
  liveBelow?: number
  /** Checked between copy batches: an abort leaves every not yet emptied pack in place. */
  signal?: AbortSignal
}

/**
 * What a repack did. packsRemoved counts every pack file unlinked, packsRewritten those of
 * them whose live chunks were copied out first; bytesFreed is the net drop of pack bytes
 * (bytes of the unlinked packs minus bytesCopied).
 */
export interface RepackResult { packsRewritten: number, packsRemoved: number, bytesCopied: number, bytesFreed: number }

export const noRepack = (): RepackResult => ({ packsRewritten: 0, packsRemoved: 0, bytesCopied: 0, bytesFreed: 0 })

/** Told of every putMany before its bytes are written (the store keeps such chunks from GC). */
export type PutObserver = (chunks: ReadonlyArray<{ hash: Uint8Array }>) => void

export interface ChunkLocationOp { type: 'put', key: Buffer, value: Buffer, sublevel: ChunkSublevel }

export type ChunkSublevel = AbstractSublevel<Level<string, Uint8Array>, string | Uint8Array, Uint8Array, Uint8Array>

/**
 * Chunks as values in a sublevel of the same level database as the index. Sharing one
 * write-ahead log means the synced index batch also makes every earlier chunk write durable,
 * in order, so sync() has nothing left to do.
 */
export class LevelChunkStore implements ChunkStore {
  constructor (private readonly db: ChunkSublevel, private readonly onPut?: PutObserver) {}

  async has (hash: Uint8Array): Promise<boolean> {
    return await this.db.has(Buffer.from(hash))
  }

  async hasMany (hashes: Uint8Array[]): Promise<boolean[]> {
    if (hashes.length === 0) return []
    return await this.db.hasMany(hashes.map(h => Buffer.from(h)))
  }

  async get (hash: Uint8Array): Promise<Uint8Array | undefined> {
    return await this.db.get(Buffer.from(hash)) ?? undefined
  }

  async getMany (hashes: Uint8Array[]): Promise<Array<Uint8Array | undefined>> {
    if (hashes.length === 0) return []
    return await this.db.getMany(hashes.map(h => Buffer.from(h)))
  }

  async putMany (chunks: Array<{ hash: Uint8Array, bytes: ChunkBytes }>): Promise<void> {
    this.onPut?.(chunks)
    if (chunks.length === 0) return
    await this.db.batch(chunks.map(c => ({ type: 'put' as const, key: Buffer.from(c.hash), value: joined(c.bytes) })))
  }

  async sync (): Promise<void> {}

  async delete (hashes: Uint8Array[]): Promise<void> {
    if (hashes.length === 0) return
    await this.db.batch(hashes.map(h => ({ type: 'del' as const, key: Buffer.from(h) })))
  }

  async * keys (): AsyncIterable<Uint8Array> {
    for await (const key of this.db.keys()) yield key
  }
}
