/**
 * Many small files in one write (a tar import's, `replicant put DIR`'s): their chunks cut and
 * hashed together, one has-check and one pack write for all of them, one commit that names
 * every record. Per file, the chunk path (PutChunks) and the commit each cost a level round
 * trip and a share of a group; for 16 KiB files those dominated (docs/ARCHITECTURE.md,
 * "Many small files"). The bytes are already in memory: the caller bounds a batch.
 */
import { InvalidInputError, ReplicantError, Codes } from '../core/errors.js'
import { sha256, hashHex } from '../core/hash.js'
import { increment } from '../core/version-vector.js'
import { normalizePath } from '../core/paths.js'
import { RECORD_VERSION, type FileRecord, type VolumeRecord } from '../core/records.js'
import type { Store, NewFileRecord } from '../store/store.js'
import { MAX_CHUNK_LIST_BYTES } from '../protocols/constants.js'
import { storeChunks } from './put-chunks.js'

/** Most files in one batch. */
export const MAX_BATCH_FILES = 1024
/** Most bytes in one batch (they are all in memory at once). */
export const MAX_BATCH_BYTES = 32 * 1024 * 1024

/** A file whose bytes are in memory, and the metadata a put would take. */
export interface BufferedFile {
  path: string
  parts: Uint8Array[]
  mode: number
  mtime: number
}

/** Buffered bytes as the source a streaming put takes. */
export async function * bufferedSource (parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield await Promise.resolve(p)
}

/** A put's path, mode and mtime, validated (defaults: 0644, now). */
export function putMeta (path: string, opts: { mode?: number, mtime?: number }): { path: string, mode: number, mtime: number } {
  const mode = opts.mode ?? 0o644
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new InvalidInputError(Codes.BAD_REQUEST, 'mode must be an integer from 0 to 0o7777', { mode })
  const mtime = opts.mtime ?? Date.now()
  if (!Number.isSafeInteger(mtime) || mtime < 0) throw new InvalidInputError(Codes.BAD_REQUEST, 'mtime must be a non-negative integer (ms)', { mtime })
  return { path: normalizePath(path), mode, mtime }
}

/** The chunk list of `parts` at `chunkSize`: subarrays of the parts where a chunk lies in one part. */
function chunksOf (parts: Uint8Array[], chunkSize: number): Uint8Array[] {
  const whole = parts.length === 1 ? parts[0] : Buffer.concat(parts)
  const out: Uint8Array[] = []
  for (let off = 0; off < whole.byteLength; off += chunkSize) out.push(whole.subarray(off, Math.min(whole.byteLength, off + chunkSize)))
  return out
}

/**
 * Stores `files` (paths normalised, mode and mtime validated by the caller) in `vol`, an
 * `active`-mode volume or one this node alone commits: chunks first (unsynced, made durable by
 * the commit's fsync), then one commit of all the records, each with the vector of the record
 * it replaces. All of them or none: the commit is one synced batch. Records in `files`' order.
 */
export async function putBufferedFiles (store: Store, selfId: string, vol: VolumeRecord, files: BufferedFile[], signal?: AbortSignal): Promise<FileRecord[]> {
  if (files.length === 0) return []
  const bytes = files.reduce((n, f) => n + f.parts.reduce((m, p) => m + p.byteLength, 0), 0)
  if (files.length > MAX_BATCH_FILES || bytes > MAX_BATCH_BYTES) {
    throw new InvalidInputError(Codes.BAD_REQUEST, `at most ${MAX_BATCH_FILES} files and ${MAX_BATCH_BYTES} bytes in one batch`, { files: files.length, bytes })
  }
  const lists: Array<{ hashes: Uint8Array[], size: number }> = []
  // One entry per distinct chunk of the batch: the pack gets each once.
  const distinct = new Map<string, { hash: Uint8Array, bytes: Uint8Array }>()
  for (const f of files) {
    const chunks = chunksOf(f.parts, vol.chunkSize)
    if (chunks.length * 32 > MAX_CHUNK_LIST_BYTES) {
      throw new ReplicantError(Codes.FILE_TOO_LARGE, `${f.path}: over ${MAX_CHUNK_LIST_BYTES / 32} chunks, too large for one record`, { path: f.path })
    }
    const hashes = chunks.map(c => {
      const hash = sha256(c)
      const hex = hashHex(hash)
      if (!distinct.has(hex)) distinct.set(hex, { hash, bytes: c })
      return hash
    })
    lists.push({ hashes, size: chunks.reduce((n, c) => n + c.byteLength, 0) })
  }
  signal?.throwIfAborted()
  await storeChunks(store, [...distinct.values()])
  signal?.throwIfAborted()
  const paths = files.map(f => f.path)
  const records = await store.commitFiles(vol.name, async ({ get }) => {
    const out: NewFileRecord[] = []
    // A path twice in a batch: the later write supersedes the earlier, so its vector follows it.
    const latest = new Map<string, NewFileRecord>()
    for (const [i, f] of files.entries()) {
      const current = latest.get(f.path) ?? await get(f.path)
      const rec: NewFileRecord = {
        v: RECORD_VERSION, path: f.path, size: lists[i].size, mode: f.mode, mtime: f.mtime, chunkSize: vol.chunkSize,
        chunks: Buffer.concat(lists[i].hashes), vv: increment(current?.vv ?? {}, selfId), deleted: false
      }
      latest.set(f.path, rec)
      out.push(rec)
    }
    return out
  }, 'write', paths)
  // The commit keeps only the last record of a path: map each file to its path's record.
  const byPath = new Map(records.map(r => [r.path, r]))
  return paths.map(p => byPath.get(p)!)
}
