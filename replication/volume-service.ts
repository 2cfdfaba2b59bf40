import { randomBytes } from 'node:crypto'
import { ConflictError, InvalidInputError, NotFoundError, ReplicantError, Codes } from '../core/errors.js'
import { DEFAULT_CHUNK_SIZE, isValidChunkSize, joinAdjacent } from '../core/chunker.js'
import { normalizePath, normalizePrefix, validateVolumeName } from '../core/paths.js'
import { increment } from '../core/version-vector.js'
import { hashHex } from '../store/chunk-store.js'
import { FOLDER_MODE, RECORD_VERSION, WRITE_MODES, chunkCount, chunkHash, chunkLength, type FileRecord, type VolumeRecord, type WriteMode } from '../core/records.js'
import type { Store, NewFileRecord, SnapshotRecord, ReplicaDeleted } from '../store/store.js'
import { PathLocks } from './path-locks.js'
import { PutChunks } from './put-chunks.js'
import { putBufferedFiles, bufferedSource, putMeta, type BufferedFile } from './put-files.js'
import { PutBatcher } from './put-batcher.js'

/** Bytes of one read batch on a get: its chunks' locations in one look-up, adjacent ones in one read. */
const READ_BATCH_BYTES = 2 * 1024 * 1024
/** Batches read ahead of the consumer on a get. */
const READ_AHEAD_BATCHES = 2

export interface CreateVolumeOptions {
  name: string
  writeMode?: WriteMode
  chunkSize?: number
  members?: string[]
  id?: string
  generation?: number
}

export interface PutOptions {
  mode?: number
  mtime?: number
  signal?: AbortSignal
}

export interface ReadRange { start: number, end: number } // inclusive end, like HTTP

/**
 * Where chunk bytes come from on a read. The local store is the first source; replication
 * wraps it so a member that lacks a chunk fetches it from peers.
 */
export type ChunkSource = (volume: VolumeRecord, hash: Uint8Array, length: number, signal?: AbortSignal) => Promise<Uint8Array>

export interface FileView {
  path: string
  size: number
  mode: number
  mtime: number
  chunks: number
  version: Record<string, number>
  seq: number
}

export function fileView (rec: FileRecord): FileView {
  return { path: rec.path, size: rec.size, mode: rec.mode, mtime: rec.mtime, chunks: chunkCount(rec), version: { ...rec.vv }, seq: rec.seq }
}

/**
 * One change of a tree write (WebDAV MKCOL, COPY, MOVE, DELETE of a folder): a folder marker,
 * a copy of a live record to another path reusing its chunks (no byte is read or written),
 * or a tombstone (skipped when the path holds nothing live).
 */
export type TreeWrite =
  | { op: 'folder', path: string, mtime?: number }
  | { op: 'copy', from: string, path: string }
  | { op: 'delete', path: string }

/** At most this many changes in one tree write (the caller cuts a larger tree into several). */
export const MAX_TREE_WRITES = 512

/** Commits a write of an `all`-mode volume with the other members (prepare/commit on every member). */
export type AllModeWriter = (vol: VolumeRecord, record: NewFileRecord) => Promise<FileRecord>

/** What replication lends the volume service; each part has a local-only default. */
export interface VolumeCollaborators {
  /** Where a read's chunk bytes come from (default: this node's store only). */
  chunkSource?: ChunkSource
  /** Writes of `all`-mode volumes with more than one member (default: none, committed locally). */
  allModeWriter?: AllModeWriter
  /** Why a volume is held offline here, if it is (default: never). */
  offlineReason?: (volume: string) => string | undefined
}

/** Local volume and file operations of one node: what the HTTP API and the TS API call. */
export class VolumeService {
  private readonly chunkSource: ChunkSource
  private readonly allModeWriter: AllModeWriter | undefined
  private readonly offlineReason: (volume: string) => string | undefined
  /** All-mode writes per path, from reading the current record through commit (see PathLocks). */
  private readonly pathLocks = new PathLocks()
  private readonly putChunks: PutChunks
  /** Small buffered puts, written together (put-batcher.ts). */
  readonly batcher: PutBatcher

  constructor (private readonly store: Store, private readonly selfId: string, collaborators: VolumeCollaborators = {}) {
    this.chunkSource = collaborators.chunkSource ?? (async (volume, hash) => {
      const bytes = await store.chunks.get(hash)
      if (bytes === undefined) {
        throw new ReplicantError(Codes.CHUNK_MISSING, `chunk ${hashHex(hash)} of volume '${volume.name}' is not held by this node`, { chunk: hashHex(hash) })
      }
      return bytes
    })
    this.putChunks = new PutChunks(store)
    this.batcher = new PutBatcher(async (volName, files) => {
      const vol = await this.volume(volName)
      this.writable(vol)
      return await putBufferedFiles(this.store, this.selfId, vol, files)
    })
    this.allModeWriter = collaborators.allModeWriter
    this.offlineReason = collaborators.offlineReason ?? (() => undefined)
  }

  /** Throws when a volume must not be read or written here (removed, or held offline). */
  private gate (vol: VolumeRecord): void {
    if (vol.state === 'removed') {
      throw new ReplicantError(Codes.VOLUME_REMOVED, `this node was removed from volume '${vol.name}' (generation ${vol.generation}); it no longer serves it`, { volume: vol.name })
    }
    const why = this.offlineReason(vol.name)
    if (why !== undefined) throw new ReplicantError(Codes.VOLUME_OFFLINE, `volume '${vol.name}' is offline on this node: ${why}`, { volume: vol.name })
  }

  /** A volume this node holds as a granted reader (grants.ts), not a member, takes no writes. */
  private writable (vol: VolumeRecord): void {
    if (!vol.members.includes(this.selfId)) {
      throw new ReplicantError(Codes.READ_ONLY, `this node is a reader of volume '${vol.name}', not a member: it cannot write to it`, { volume: vol.name })
    }
  }

  async createVolume (opts: CreateVolumeOptions): Promise<VolumeRecord> {
    const name = validateVolumeName(opts.name)
    const writeMode = opts.writeMode ?? 'active'
    if (!WRITE_MODES.includes(writeMode)) {
      throw new InvalidInputError(Codes.BAD_REQUEST, `write mode must be one of ${WRITE_MODES.join(', ')}`, { writeMode })
    }
    const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE
    if (!isValidChunkSize(chunkSize)) {
      throw new InvalidInputError(Codes.BAD_REQUEST, 'chunk size must be a power of two from 4 KiB to 1 MiB', { chunkSize })
    }
    const members = [...new Set(opts.members ?? [this.selfId])].sort()
    return await this.store.createVolume({
      v: RECORD_VERSION,
      name,
      id: opts.id ?? randomBytes(16).toString('hex'),
      generation: opts.generation ?? 1,
      members,
      writeMode,
      chunkSize,
      createdAt: Date.now(),
      seq: 0,
      dirty: false
    })
  }

  /**
   * Deletes this node's replica of a volume it is no longer a member of (state `removed`),
   * all of it (Store.deleteVolume), so that a following GC gives the space back. Refused while
   * this node is a member: the replica is then part of the volume's replica set. The check
   * runs under the store's commit mutex, so a generation that lists this node again and lands
   * meanwhile is either seen (refused) or comes after (the volume is created afresh).
   */
  async dropVolume (name: string): Promise<{ name: string, id: string } & ReplicaDeleted> {
    const volName = validateVolumeName(name)
    let id = ''
    const gone = await this.store.deleteVolume(volName, vol => {
      if (vol.state !== 'removed' || vol.members.includes(this.selfId)) {
        throw new ConflictError(Codes.STILL_A_MEMBER, `this node is a member of '${volName}' (state ${vol.state ?? 'steady'}): remove it from the replica set first (volume remove-replica)`, { volume: volName })
      }
      id = vol.id
    })
    return { name: volName, id, ...gone }
  }

  async volume (name: string): Promise<VolumeRecord> {
    const vol = await this.store.requireVolume(validateVolumeName(name))
    this.gate(vol)
    return vol
  }

  /** Streams `source` into the volume at `path`; durable (chunks, then one synced index batch) on return. */
  async putFile (volName: string, path: string, source: AsyncIterable<Uint8Array>, opts: PutOptions = {}): Promise<FileRecord> {
    const vol = await this.volume(volName)
    this.writable(vol)
    const { path: p, mode, mtime } = putMeta(path, opts)
    const { hashes, size } = await this.putChunks.write(source, vol.chunkSize, p, opts.signal)
    opts.signal?.throwIfAborted()
    const chunks = Buffer.concat(hashes)
    if (this.allModeWriter !== undefined && vol.writeMode === 'all' && vol.members.length > 1) {
      const writer = this.allModeWriter
      return await this.pathLocks.run(`${vol.name}\x00${p}`, async () => {
        const current = await this.store.getFile(vol.name, p)
        return await writer(vol, {
          v: RECORD_VERSION, path: p, size, mode, mtime, chunkSize: vol.chunkSize, chunks, vv: increment(current?.vv ?? {}, this.selfId), deleted: false
        })
      })
    }
    // Active mode derives the vector inside commitFiles, under the store's commit mutex.
    const [rec] = await this.store.commitFiles(vol.name, async ({ get }) => {
      const current = await get(p)
      return [{
        v: RECORD_VERSION, path: p, size, mode, mtime, chunkSize: vol.chunkSize, chunks,
        vv: increment(current?.vv ?? {}, this.selfId), deleted: false
      }]
    }, 'write', [p])
    return rec
  }

  /**
   * Small files whose bytes are in memory, in one write (put-files.ts): durable together on
   * return, records in the order given. An `all`-mode volume with other members commits each
   * with them as putFile does, all at once; the first failure is thrown once all have settled.
   */
  async putFiles (volName: string, files: Array<{ path: string, parts: Uint8Array[] } & PutOptions>, signal?: AbortSignal): Promise<FileRecord[]> {
    const vol = await this.volume(volName)
    this.writable(vol)
    const batch: BufferedFile[] = files.map(f => ({ ...putMeta(f.path, f), parts: f.parts }))
    if (this.allModeWriter !== undefined && vol.writeMode === 'all' && vol.members.length > 1) {
      const settled = await Promise.allSettled(batch.map(async f => await this.putFile(vol.name, f.path, bufferedSource(f.parts), { ...f, signal })))
      const failed = settled.find(s => s.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      return settled.map(s => (s as PromiseFulfilledResult<FileRecord>).value)
    }
    return await putBufferedFiles(this.store, this.selfId, vol, batch, signal)
  }

  /**
   * A small file whose bytes are in memory (an HTTP PUT's body), written with the others that
   * arrive meanwhile as one batch (PutBatcher); durable on return. An `all`-mode volume with
   * other members commits it with them, as putFile does.
   */
  async putBuffered (volName: string, path: string, parts: Uint8Array[], opts: PutOptions = {}): Promise<FileRecord> {
    const vol = await this.volume(volName)
    this.writable(vol)
    const meta = putMeta(path, opts)
    opts.signal?.throwIfAborted()
    if (this.allModeWriter !== undefined && vol.writeMode === 'all' && vol.members.length > 1) return await this.putFile(vol.name, meta.path, bufferedSource(parts), opts)
    return await this.batcher.put(vol.name, { ...meta, parts })
  }

  async stat (volName: string, path: string): Promise<FileRecord> {
    const vol = await this.volume(volName)
    const p = normalizePath(path)
    const rec = await this.store.getFile(vol.name, p)
    if (rec === undefined || rec.deleted) throw new NotFoundError(Codes.FILE_NOT_FOUND, `no file ${p} in volume '${vol.name}'`, { volume: vol.name, path: p })
    return rec
  }

  /** The bytes of `rec` in [range.start, range.end], streamed chunk by chunk with a small read-ahead. */
  async * readFile (volName: string, rec: FileRecord, range?: ReadRange, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const vol = await this.volume(volName)
    const start = range?.start ?? 0
    const end = range?.end ?? rec.size - 1
    if (rec.size === 0 || end < start) return
    const first = Math.floor(start / rec.chunkSize)
    const last = Math.floor(end / rec.chunkSize)
    const perBatch = Math.max(1, Math.floor(READ_BATCH_BYTES / rec.chunkSize))
    // A batch: the held chunks in one look-up (adjacent ones in one read), the rest from the chunk source.
    const load = async (from: number, to: number): Promise<Uint8Array[]> => {
      const idx = Array.from({ length: to - from + 1 }, (_, k) => from + k)
      const held = await this.store.chunks.getMany(idx.map(i => chunkHash(rec, i)))
      return await Promise.all(idx.map(async (i, k) => held[k] ?? await this.chunkSource(vol, chunkHash(rec, i), chunkLength(rec, i), signal)))
    }
    const inflight: Array<{ from: number, chunks: Promise<Uint8Array[]> }> = []
    let next = first
    const fill = (): void => {
      while (next <= last && inflight.length < READ_AHEAD_BATCHES) {
        const to = Math.min(last, next + perBatch - 1)
        const chunks = load(next, to)
        chunks.catch(() => {}) // surfaced when awaited below; avoid unhandled rejections meanwhile
        inflight.push({ from: next, chunks })
        next = to + 1
      }
    }
    while (inflight.length > 0 || next <= last) {
      signal?.throwIfAborted()
      fill()
      const b = inflight.shift()!
      const chunks = await b.chunks
      fill()
      yield * joinAdjacent(chunks.map((bytes, k) => {
        const chunkStart = (b.from + k) * rec.chunkSize
        return bytes.subarray(Math.max(0, start - chunkStart), Math.min(bytes.byteLength, end - chunkStart + 1))
      }))
    }
  }

  // ---- snapshots ----

  async createSnapshot (volName: string, name?: string): Promise<SnapshotRecord> {
    const vol = await this.volume(volName)
    const snapName = name === undefined || name === '' ? new Date().toISOString().replace(/[:.]/g, '-').toLowerCase() : name
    try {
      validateVolumeName(snapName)
    } catch {
      throw new InvalidInputError(Codes.BAD_SNAPSHOT_NAME, 'snapshot name must be 1-63 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit', { name: snapName })
    }
    return await this.store.createSnapshot(vol.name, snapName)
  }

  /** A file as a snapshot shows it. */
  async statAt (volName: string, snapshot: string, path: string): Promise<FileRecord> {
    const vol = await this.volume(volName)
    const snap = await this.store.getSnapshot(vol.name, snapshot)
    const p = normalizePath(path)
    const rec = await this.store.getFileAt(vol.name, p, snap.seq)
    if (rec === undefined) throw new NotFoundError(Codes.FILE_NOT_FOUND, `no file ${p} in snapshot '${snapshot}' of volume '${vol.name}'`, { volume: vol.name, path: p, snapshot })
    return rec
  }

  async * listFilesAt (volName: string, snapshot: string, prefix?: string): AsyncGenerator<FileRecord> {
    const vol = await this.volume(volName)
    const snap = await this.store.getSnapshot(vol.name, snapshot)
    yield * this.store.listFilesAt(vol.name, snap.seq, normalizePrefix(prefix))
  }

  /** `from`: start at this path under `prefix` (skipping what sorts before it). */
  async * listFiles (volName: string, prefix?: string, signal?: AbortSignal, from?: string): AsyncGenerator<FileRecord> {
    const vol = await this.volume(volName)
    for await (const rec of this.store.listFiles(vol.name, normalizePrefix(prefix), { signal, ...(from !== undefined ? { from } : {}) })) {
      if (!rec.deleted) yield rec
    }
  }

  /**
   * Tree writes (see TreeWrite), in order: in `active` mode one synced batch, so a move of a
   * folder lands whole or not at all; in `all` mode one two-phase write per change, in order
   * (a move whose later change fails leaves the copies made so far, never a lost file).
   */
  async writeTree (volName: string, writes: TreeWrite[]): Promise<FileRecord[]> {
    const vol = await this.volume(volName)
    this.writable(vol)
    if (writes.length > MAX_TREE_WRITES) throw new InvalidInputError(Codes.BAD_REQUEST, `at most ${MAX_TREE_WRITES} changes in one tree write`)
    const paths = writes.map(w => ({ ...w, path: normalizePath(w.path), ...(w.op === 'copy' ? { from: normalizePath(w.from) } : {}) }))
    const build = async (w: TreeWrite, get: (path: string) => Promise<FileRecord | undefined>): Promise<NewFileRecord | undefined> => {
      const current = await get(w.path)
      const vv = increment(current?.vv ?? {}, this.selfId)
      if (w.op === 'folder') {
        return { v: RECORD_VERSION, path: w.path, size: 0, mode: FOLDER_MODE | 0o755, mtime: w.mtime ?? Date.now(), chunkSize: vol.chunkSize, chunks: new Uint8Array(0), vv, deleted: false }
      }
      if (w.op === 'delete') {
        if (current === undefined || current.deleted) return undefined
        return { v: RECORD_VERSION, path: w.path, size: 0, mode: current.mode, mtime: Date.now(), chunkSize: current.chunkSize, chunks: new Uint8Array(0), vv, deleted: true }
      }
      const src = await get(w.from)
      if (src === undefined || src.deleted) throw new NotFoundError(Codes.FILE_NOT_FOUND, `no file ${w.from} in volume '${vol.name}'`, { volume: vol.name, path: w.from })
      return { v: RECORD_VERSION, path: w.path, size: src.size, mode: src.mode, mtime: src.mtime, chunkSize: src.chunkSize, chunks: src.chunks, vv, deleted: false }
    }
    if (this.allModeWriter !== undefined && vol.writeMode === 'all' && vol.members.length > 1) {
      const writer = this.allModeWriter
      const done: FileRecord[] = []
      for (const w of paths) {
        const rec = await this.pathLocks.run(`${vol.name}\x00${w.path}`, async () => {
          const next = await build(w, async p => await this.store.getFile(vol.name, p))
          return next === undefined ? undefined : await writer(vol, next)
        })
        if (rec !== undefined) done.push(rec)
      }
      return done
    }
    return await this.store.commitFiles(vol.name, async ({ get, cause }) => {
      const out: NewFileRecord[] = []
      for (const w of paths) {
        const next = await build(w, get)
        if (next === undefined) continue
        if (w.op === 'delete') cause(w.path, 'delete')
        out.push(next)
      }
      return out
    })
  }

  /** Deletes by writing a tombstone, so the delete replicates and orders like any write. */
  async removeFile (volName: string, path: string): Promise<FileRecord> {
    const vol = await this.volume(volName)
    this.writable(vol)
    const p = normalizePath(path)
    if (this.allModeWriter !== undefined && vol.writeMode === 'all' && vol.members.length > 1) {
      const writer = this.allModeWriter
      return await this.pathLocks.run(`${vol.name}\x00${p}`, async () => {
        const current = await this.store.getFile(vol.name, p)
        if (current === undefined || current.deleted) throw new NotFoundError(Codes.FILE_NOT_FOUND, `no file ${p} in volume '${vol.name}'`, { volume: vol.name, path: p })
        return await writer(vol, {
          v: RECORD_VERSION, path: p, size: 0, mode: current.mode, mtime: Date.now(), chunkSize: current.chunkSize,
          chunks: new Uint8Array(0), vv: increment(current.vv, this.selfId), deleted: true
        })
      })
    }
    const [rec] = await this.store.commitFiles(vol.name, async ({ get }) => {
      const current = await get(p)
      if (current === undefined || current.deleted) {
        throw new NotFoundError(Codes.FILE_NOT_FOUND, `no file ${p} in volume '${vol.name}'`, { volume: vol.name, path: p })
      }
      return [{
        v: RECORD_VERSION, path: p, size: 0, mode: current.mode, mtime: Date.now(), chunkSize: current.chunkSize,
        chunks: new Uint8Array(0), vv: increment(current.vv, this.selfId), deleted: true
      }]
    }, 'delete', [p])
    return rec
  }
}
