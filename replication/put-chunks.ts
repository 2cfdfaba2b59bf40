/**
 * The chunk half of a put: the body cut into chunks, hashed, and written to the chunk store
 * in unsynced batches of PUT_BATCH_CHUNKS, one batch written while the next is received and
 * hashed (at most two in memory per put). Durable only with the commit that follows
 * (ChunkStore's contract); docs/ARCHITECTURE.md, "Big files".
 */
import { ChunkBuffers, fixedChunks } from '../core/chunker.js'
import { ReplicantError, Codes } from '../core/errors.js'
import { sha256 } from '../core/hash.js'
import type { Store } from '../store/store.js'
import { MAX_CHUNK_LIST_BYTES } from '../protocols/constants.js'

/** Chunks written per unsynced batch during a put: bounds memory to about 4 MiB at 64 KiB chunks. */
const PUT_BATCH_CHUNKS = 64
/** Chunk buffers kept for reuse by puts, per chunk size (ChunkBuffers). */
const KEPT_CHUNK_BYTES = 16 * 1024 * 1024

type Chunk = { hash: Uint8Array, bytes: Uint8Array }

/**
 * Writes the chunks the store does not hold yet (unsynced: durable with the commit after).
 * Chunks already stored are not rewritten: they are kept from garbage collection until that
 * commit, marked before the look (a GC sweeping meanwhile then skips them).
 */
export async function storeChunks (store: Store, chunks: Chunk[]): Promise<void> {
  store.touchChunks(chunks.map(c => c.hash))
  const have = await store.chunks.hasMany(chunks.map(c => c.hash))
  await store.chunks.putMany(chunks.filter((_, i) => !have[i]))
}

export class PutChunks {
  /** Written chunks' buffers, reused by the next puts (one pool per chunk size). */
  private readonly buffers = new Map<number, ChunkBuffers>()

  constructor (private readonly store: Store) {}

  /** Stores the chunks of `source`; their hashes, in order, and the byte count. */
  async write (source: AsyncIterable<Uint8Array>, chunkSize: number, path: string, signal?: AbortSignal): Promise<{ hashes: Uint8Array[], size: number }> {
    const buffers = this.buffers.get(chunkSize) ?? new ChunkBuffers(chunkSize, Math.max(1, Math.floor(KEPT_CHUNK_BYTES / chunkSize)))
    this.buffers.set(chunkSize, buffers)
    const hashes: Uint8Array[] = []
    let size = 0
    let batch: Chunk[] = []
    let writing: Promise<void> | undefined
    const flush = async (): Promise<void> => {
      const chunks = batch
      batch = []
      await writing
      writing = this.writeBatch(chunks, buffers)
      writing.catch(() => {}) // awaited at the next flush or at the end
    }
    try {
      for await (const chunk of fixedChunks(source, chunkSize, buffers)) {
        signal?.throwIfAborted()
        const hash = sha256(chunk)
        hashes.push(hash)
        // A record's chunk list has a ceiling (it must cross the wire and sit in one index value).
        if (hashes.length * 32 > MAX_CHUNK_LIST_BYTES) {
          throw new ReplicantError(Codes.FILE_TOO_LARGE, `file over ${MAX_CHUNK_LIST_BYTES / 32} chunks of ${chunkSize} bytes (${(MAX_CHUNK_LIST_BYTES / 32) * chunkSize} bytes): too large for one record`, { path })
        }
        size += chunk.byteLength
        batch.push({ hash, bytes: chunk })
        if (batch.length >= PUT_BATCH_CHUNKS) await flush()
      }
      await flush()
      await writing
    } finally {
      await writing?.catch(() => {})
    }
    return { hashes, size }
  }

  private async writeBatch (chunks: Chunk[], buffers: ChunkBuffers): Promise<void> {
    await storeChunks(this.store, chunks)
    // Written (or already held): the store keeps no reference to the bytes any more.
    for (const c of chunks) buffers.give(c.bytes)
  }
}
