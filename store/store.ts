import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import type { AbstractBatchOperation } from 'abstract-level'
import { ReplicantError, ConflictError, NotFoundError, Codes } from '../core/errors.js'
import { logger } from '../core/log.js'
import { LevelChunkStore, type ChunkStore, type RepackOptions, type RepackResult, hashHex, noRepack } from './chunk-store.js'
import { PackChunkStore, type RepackPoint } from './pack-chunk-store.js'

/** Where chunk bytes live: pack files (default; see docs/CHUNKING.md) or values in level. */
export type ChunkBackend = 'pack' | 'level'

export interface StoreOptions {
  chunkBackend?: ChunkBackend
  /** Pack size at which a new pack is started (default 64 MiB; tests use small packs). */
  packTargetBytes?: number
  /** Test hook only: awaited at each repack crash point (a kill -9 test pauses there). */
  repackHook?: (point: RepackPoint) => Promise<void>
}

/** What collectGarbage did: the chunks it deleted, then the repack that gave their space back. */
export interface GcResult { scanned: number, deleted: number, kept: number, repack: RepackResult }
import { encode, decode, asFileRecord, asVolumeRecord, asPeerRecord } from '../core/codec.js'
import { Mutex } from '../core/mutex.js'
import { chunkHashes, type FileRecord, type VolumeRecord, type PeerRecord } from '../core/records.js'

const log = logger('store')

/** A file record before the store assigns its change-log sequence number. */
export type NewFileRecord = Omit<FileRecord, 'seq'>

/** What a commit callback sees: current records (including earlier ones of the same commit). */
export interface CommitContext {
  volume: VolumeRecord
  get: (path: string) => Promise<FileRecord | undefined>
  /** Advance a peer's watermark in the same atomic batch as the records. */
  setWatermark: (peerId: string, seq: number) => void
  /** Record an `all`-mode transaction as committed, and drop its prepared record, in the same batch. */
  settleTx: (txId: string) => void
}

/** A frozen, read-only view of a volume at one change-log sequence number. */
export interface SnapshotRecord { volume: string, name: string, seq: number, createdAt: number }

/** A write of an `all`-mode volume that a member has stored durably but not made visible. */
export interface PreparedWrite {
  txId: string
  volume: string
  coordinator: string
  record: NewFileRecord
  at: number
}

const SEP = '\x00'
const END = '\x01'
/** Reference counts are kept per (chunk, volume): the hash first, so one chunk's volumes are adjacent. */
const refKey = (hash: Uint8Array, vol: string): Buffer => Buffer.concat([hash, Buffer.from(vol, 'utf8')])
const versionKey = (vol: string, path: string, seq: number): string => `${vol}${SEP}${path}${SEP}${seq.toString(16).padStart(16, '0')}`
const seqKey = (vol: string, seq: number): string => `${vol}${SEP}${seq.toString(16).padStart(16, '0')}`

type Op = AbstractBatchOperation<any, any, any>

/**
 * The node's store: one level database with one sublevel per concern (see
 * docs/ARCHITECTURE.md). Index changes go through commitFiles(), serialised by one mutex, and
 * land as one synced batch: record(s), change-log entries, chunk reference counts, volume seq
 * and dirty flag, watermark.
 */
export class Store {
  readonly dir: string
  chunks!: ChunkStore & { close?: () => Promise<void> }
  /** Volumes whose dirty flag was found set when the store opened: they were not closed cleanly. */
  readonly foundDirty: string[] = []
  private readonly db: Level<string, Uint8Array>
  private readonly volumes
  private readonly files
  private readonly changes
  private readonly refs
  private readonly peers
  private readonly watermarks
  private readonly meta
  private readonly applied
  private readonly prepared
  private readonly txlog
  private readonly snapshots
  private readonly versions
  /** Per volume, the seq of its newest snapshot: versions at or below it are kept on overwrite. */
  private readonly maxSnapshotSeq = new Map<string, number>()
  /** Bumped by every change of the prepared sublevel; preparedChunks' cache is per value. */
  private preparedGen = 0
  private readonly preparedSets = new Map<string, { gen: number, set: Set<string> }>()
  /** volumeSize's last answer per volume, valid while the volume's id and seq are the same. */
  private readonly sizes = new Map<string, { key: string, files: number, bytes: number }>()
  /** Snapshots a dump is reading (name key -> how many dumps): they may not be deleted. */
  private readonly pinned = new Map<string, number>()
  /** Work counters (tests assert on work done rather than time). */
  readonly counters = { versionsSaved: 0 }
  private readonly mutex = new Mutex()
  /** GC and repack, one at a time (taken before `mutex` wherever both are held). */
  private readonly maintenance = new Mutex()
  /** Aborted by close(): a repack in progress stops at its next batch. */
  private readonly closing = new AbortController()
  private closed = false
  /** Called after every commit that wrote file records (not for watermark-only commits). */
  readonly commitListeners = new Set<(volume: VolumeRecord, records: FileRecord[]) => void>()

  private constructor (dir: string, db: Level<string, Uint8Array>) {
    this.dir = dir
    this.db = db
    this.volumes = db.sublevel<string, Uint8Array>('volumes', { valueEncoding: 'view' })
    this.files = db.sublevel<string, Uint8Array>('files', { valueEncoding: 'view' })
    this.changes = db.sublevel<string, string>('changes', { valueEncoding: 'utf8' })
    this.refs = db.sublevel<Uint8Array, number>('refs', { keyEncoding: 'buffer', valueEncoding: 'json' })
    this.peers = db.sublevel<string, Uint8Array>('peers', { valueEncoding: 'view' })
    this.watermarks = db.sublevel<string, number>('watermarks', { valueEncoding: 'json' })
    this.meta = db.sublevel<string, string>('meta', { valueEncoding: 'json' })
    this.applied = db.sublevel<string, number>('applied', { valueEncoding: 'json' })
    this.prepared = db.sublevel<string, Uint8Array>('prepared', { valueEncoding: 'view' })
    this.txlog = db.sublevel<string, string>('txlog', { valueEncoding: 'json' })
    this.snapshots = db.sublevel<string, SnapshotRecord>('snapshots', { valueEncoding: 'json' })
    this.versions = db.sublevel<string, Uint8Array>('versions', { valueEncoding: 'view' })
  }

  /** Opens (creating if needed) the store under `dir`/store. Refuses a store another process holds. */
  static async open (dir: string, opts: StoreOptions = {}): Promise<Store> {
    const path = join(dir, 'store')
    await mkdir(path, { recursive: true })
    const db = new Level<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new ReplicantError(Codes.DATA_DIR_LOCKED, `data dir ${dir} is in use by another replicant process`, { dir })
      }
      throw err
    }
    const store = new Store(dir, db)
    try {
      // The backend is fixed when a store is first used: a store keeps the one it was made with.
      const backend = await store.meta.get('chunkBackend') as ChunkBackend | undefined ?? opts.chunkBackend ?? 'pack'
      if (backend === 'level') {
        store.chunks = new LevelChunkStore(db.sublevel<Uint8Array, Uint8Array>('chunks', { keyEncoding: 'buffer', valueEncoding: 'view' }) as never)
      } else {
        store.chunks = await PackChunkStore.open(join(dir, 'chunks'), db.sublevel<Uint8Array, Uint8Array>('chunkloc', { keyEncoding: 'buffer', valueEncoding: 'view' }) as never, {
          ...(opts.packTargetBytes !== undefined ? { targetBytes: opts.packTargetBytes } : {}),
          ...(opts.repackHook !== undefined ? { repackHook: opts.repackHook } : {})
        })
      }
      await store.meta.put('chunkBackend', backend)
      store.trackYoungChunks()
    } catch (err) {
      await db.close()
      throw err
    }
    for await (const value of store.volumes.values()) {
      const vol = asVolumeRecord(decode(value))
      if (vol.dirty) store.foundDirty.push(vol.name)
    }
    if (store.foundDirty.length > 0) log('volumes not closed cleanly: %o', store.foundDirty)
    for await (const snap of store.snapshots.values()) {
      store.maxSnapshotSeq.set(snap.volume, Math.max(store.maxSnapshotSeq.get(snap.volume) ?? -1, snap.seq))
    }
    return store
  }

  get isOpen (): boolean { return !this.closed }

  /** Clears the dirty flag of every volume (a clean close), then closes the database. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closing.abort()
    await this.maintenance.run(async () => await this.mutex.run(async () => {
      if (this.closed) return
      const ops: Op[] = []
      for await (const value of this.volumes.values()) {
        const vol = asVolumeRecord(decode(value))
        if (vol.dirty) ops.push({ type: 'put', key: vol.name, value: encode({ ...vol, dirty: false }), sublevel: this.volumes })
      }
      await this.chunks.close?.()
      if (ops.length > 0) await this.db.batch(ops, { sync: true })
      this.closed = true
      await this.db.close()
    }))
  }

  private assertOpen (): void {
    if (this.closed) throw new ReplicantError(Codes.STORE_CLOSED, 'store is closed')
  }

  // ---- volumes ----

  async getVolume (name: string): Promise<VolumeRecord | undefined> {
    this.assertOpen()
    const value = await this.volumes.get(name)
    return value === undefined ? undefined : asVolumeRecord(decode(value))
  }

  async requireVolume (name: string): Promise<VolumeRecord> {
    const vol = await this.getVolume(name)
    if (vol === undefined) throw new NotFoundError(Codes.VOLUME_NOT_FOUND, `no volume named '${name}' on this node`, { volume: name })
    return vol
  }

  async listVolumes (): Promise<VolumeRecord[]> {
    this.assertOpen()
    const out: VolumeRecord[] = []
    for await (const value of this.volumes.values()) out.push(asVolumeRecord(decode(value)))
    return out
  }

  async createVolume (vol: VolumeRecord): Promise<VolumeRecord> {
    this.assertOpen()
    // A record open() could not decode must never be written (it would brick the store).
    asVolumeRecord(vol)
    return await this.mutex.run(async () => {
      if (await this.volumes.has(vol.name)) {
        throw new ConflictError(Codes.VOLUME_EXISTS, `volume '${vol.name}' already exists`, { volume: vol.name })
      }
      await this.db.batch([{ type: 'put', key: vol.name, value: encode(vol), sublevel: this.volumes } as Op], { sync: true })
      return vol
    })
  }

  /** Read-modify-write of a volume record under the commit mutex. */
  async updateVolume (name: string, fn: (vol: VolumeRecord) => VolumeRecord): Promise<VolumeRecord> {
    this.assertOpen()
    return await this.mutex.run(async () => {
      const next = fn(await this.requireVolume(name))
      await this.db.batch([{ type: 'put', key: name, value: encode(next), sublevel: this.volumes } as Op], { sync: true })
      return next
    })
  }

  // ---- files ----

  async getFile (vol: string, path: string): Promise<FileRecord | undefined> {
    this.assertOpen()
    const value = await this.files.get(`${vol}${SEP}${path}`)
    return value === undefined ? undefined : asFileRecord(decode(value))
  }

  /** Records under `prefix` in path order, tombstones included (callers filter). */
  async * listFiles (vol: string, prefix = '/', options: { signal?: AbortSignal } = {}): AsyncGenerator<FileRecord> {
    this.assertOpen()
    const gte = `${vol}${SEP}${prefix}`
    // Keys under the prefix are contiguous from gte: stop at the first without it. (An upper
    // bound of `${prefix}\uffff` missed paths with characters at or above U+FFFF.)
    for await (const [key, value] of this.files.iterator({ gte, lt: `${vol}${END}`, signal: options.signal } as never)) {
      if (!(key as string).startsWith(gte)) break
      yield asFileRecord(decode(value))
    }
  }

  /**
   * Records changed after `afterSeq`, in change-log order. Each path appears once, at its
   * latest change: the log keeps one entry per path (older entries are deleted when a path
   * changes), so "everything since N" is always complete and never grows past the index.
   */
  async * changesSince (vol: string, afterSeq: number, options: { signal?: AbortSignal, batch?: number } = {}): AsyncGenerator<FileRecord> {
    this.assertOpen()
    const batchSize = options.batch ?? 256
    let from = afterSeq
    while (true) {
      options.signal?.throwIfAborted()
      const entries: Array<[string, string]> = []
      for await (const entry of this.changes.iterator({ gt: seqKey(vol, from), lt: `${vol}${END}`, limit: batchSize })) {
        entries.push(entry as [string, string])
      }
      if (entries.length === 0) return
      const values = await this.files.getMany(entries.map(([, path]) => `${vol}${SEP}${path}`))
      for (const value of values) {
        if (value !== undefined) yield asFileRecord(decode(value))
      }
      const lastKey = entries[entries.length - 1][0]
      from = parseInt(lastKey.slice(vol.length + 1), 16)
    }
  }

  /**
   * The only way the index changes. `decide` sees the volume and current records and returns
   * the records to write; they get consecutive sequence numbers and land in one synced batch
   * with their change-log entries, reference counts, the volume's seq and dirty flag, and any
   * watermark set. Chunks they reference must already be in the chunk store.
   */
  async commitFiles (volName: string, decide: (ctx: CommitContext) => Promise<NewFileRecord[]>): Promise<FileRecord[]> {
    this.assertOpen()
    return await this.mutex.run(async () => {
      let volume = await this.requireVolume(volName)
      const pending = new Map<string, FileRecord>()
      const watermarkOps: Op[] = []
      const ctx: CommitContext = {
        volume,
        get: async (path) => pending.get(path) ?? await this.getFile(volName, path),
        setWatermark: (peerId, seq) => {
          watermarkOps.push({ type: 'put', key: `${volName}${SEP}${peerId}`, value: seq, sublevel: this.watermarks })
        },
        settleTx: (txId) => {
          watermarkOps.push({ type: 'put', key: `${volName}${SEP}${txId}`, value: 'commit', sublevel: this.txlog })
          watermarkOps.push({ type: 'del', key: `${volName}${SEP}${txId}`, sublevel: this.prepared })
          this.preparedGen++
        }
      }
      const next = await decide(ctx)
      if (next.length === 0 && watermarkOps.length === 0) return []
      await this.chunks.sync()
      const ops: Op[] = []
      const refDelta = new Map<string, { hash: Uint8Array, delta: number }>()
      const addRefs = (rec: FileRecord | undefined, sign: number): void => {
        if (rec === undefined || rec.deleted) return
        const seen = new Set<string>()
        for (const h of chunkHashes(rec)) {
          const hex = hashHex(h)
          if (seen.has(hex)) continue
          seen.add(hex)
          const entry = refDelta.get(hex) ?? { hash: h, delta: 0 }
          entry.delta += sign
          refDelta.set(hex, entry)
        }
      }
      const written: FileRecord[] = []
      let seq = volume.seq
      for (const n of next) {
        const fromThisCommit = pending.has(n.path)
        const current = await ctx.get(n.path)
        if (current !== undefined) {
          ops.push({ type: 'del', key: seqKey(volName, current.seq), sublevel: this.changes })
        }
        const rec: FileRecord = { ...n, seq: ++seq }
        if (current !== undefined && !fromThisCommit && current.seq <= (this.maxSnapshotSeq.get(volName) ?? -1)) {
          // Copy-on-write: a snapshot still shows this version; keep it (and its chunk refs).
          ops.push({ type: 'put', key: versionKey(volName, current.path, current.seq), value: encode({ rec: current, supersededAt: rec.seq }), sublevel: this.versions })
          this.counters.versionsSaved++
        } else {
          addRefs(current, -1)
        }
        addRefs(rec, +1)
        pending.set(rec.path, rec)
        written.push(rec)
      }
      // Only the last record for a path is kept; earlier ones of this commit were superseded.
      const finals = new Map(written.map(r => [r.path, r]))
      for (const rec of written) {
        if (finals.get(rec.path) !== rec) ops.push({ type: 'del', key: seqKey(volName, rec.seq), sublevel: this.changes })
      }
      for (const rec of finals.values()) {
        ops.push({ type: 'put', key: `${volName}${SEP}${rec.path}`, value: encode(rec), sublevel: this.files })
        ops.push({ type: 'put', key: seqKey(volName, rec.seq), value: rec.path, sublevel: this.changes })
      }
      const changed = [...refDelta.values()].filter(e => e.delta !== 0)
      if (changed.length > 0) {
        const keys = changed.map(e => refKey(e.hash, volName))
        const counts = await this.refs.getMany(keys)
        changed.forEach((e, i) => {
          const n = (counts[i] ?? 0) + e.delta
          const key = keys[i]
          ops.push(n > 0 ? { type: 'put', key, value: n, sublevel: this.refs } : { type: 'del', key, sublevel: this.refs })
        })
      }
      volume = { ...volume, seq, dirty: true }
      ops.push({ type: 'put', key: volName, value: encode(volume), sublevel: this.volumes })
      ops.push(...watermarkOps)
      await this.db.batch(ops, { sync: true })
      const result = [...finals.values()]
      if (result.length > 0) {
        for (const listener of this.commitListeners) {
          try { listener(volume, result) } catch (err) { log.error('commit listener failed: %O', err) }
        }
      }
      return result
    })
  }

  /** Chunks written by this process and not yet collectable: hex -> when written. */
  private readonly young = new Map<string, number>()

  /** Wraps the chunk store's putMany so that chunks of writes still in progress are never collected. */
  private trackYoungChunks (): void {
    const inner = this.chunks
    const putMany = inner.putMany.bind(inner)
    inner.putMany = async (chunks) => {
      const now = Date.now()
      for (const c of chunks) this.young.set(hashHex(c.hash), now)
      await putMany(chunks)
    }
  }

  /** Marks chunks as in use by a write in progress (found already stored, so not rewritten). */
  touchChunks (hashes: Uint8Array[]): void {
    const now = Date.now()
    for (const h of hashes) this.young.set(hashHex(h), now)
  }

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
    this.assertOpen()
    return await this.maintenance.run(async () => {
      this.assertOpen()
      const marked = await this.mutex.run(async () => await this.deleteUnreferenced(opts.youngMs ?? 10 * 60_000, opts.signal))
      const repack = opts.repack === false ? noRepack() : await this.runRepack({ ...(typeof opts.repack === 'object' ? opts.repack : {}), signal: opts.signal })
      return { ...marked, repack }
    })
  }

  /** GC's mark and sweep (the caller holds the commit mutex). */
  private async deleteUnreferenced (youngMs: number, signal?: AbortSignal): Promise<{ scanned: number, deleted: number, kept: number }> {
    const referenced = new Set<string>()
    for await (const key of this.refs.keys()) referenced.add(Buffer.from(key as Uint8Array).subarray(0, 32).toString('hex'))
    for (const p of await this.listPrepared()) for (const h of chunkHashes(p.record)) referenced.add(hashHex(h))
    const now = Date.now()
    for (const [hex, at] of this.young) {
      if (now - at < youngMs) referenced.add(hex)
      else this.young.delete(hex)
    }
    let scanned = 0
    let deleted = 0
    let batch: Uint8Array[] = []
    // A put or fetch that found a chunk already stored marks it young before it looks (touch,
    // then has): one that did so after the mark is honoured here, right before each delete.
    const sweep = async (): Promise<void> => {
      const gone = batch.filter(h => !this.young.has(hashHex(h)))
      await this.chunks.delete(gone)
      deleted += gone.length
      batch = []
    }
    for await (const key of this.chunks.keys()) {
      signal?.throwIfAborted()
      scanned++
      if (referenced.has(hashHex(key))) continue
      batch.push(Buffer.from(key))
      if (batch.length >= 256) await sweep()
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
    this.assertOpen()
    return await this.maintenance.run(async () => {
      this.assertOpen()
      return await this.runRepack(opts)
    })
  }

  private async runRepack (opts: RepackOptions): Promise<RepackResult> {
    if (this.chunks.repack === undefined) return noRepack()
    const signal = opts.signal === undefined ? this.closing.signal : AbortSignal.any([opts.signal, this.closing.signal])
    return await this.chunks.repack({ ...opts, signal })
  }

  /** How many live file records reference `hash`, in `volume` or (without it) in all volumes. */
  async refCount (hash: Uint8Array, volume?: string): Promise<number> {
    this.assertOpen()
    if (volume !== undefined) return await this.refs.get(refKey(hash, volume)) ?? 0
    let n = 0
    const h = Buffer.from(hash)
    for await (const count of this.refs.values({ gte: h, lt: Buffer.concat([h, Buffer.from([0xff])]) })) n += count
    return n
  }

  /** Which of `hashes` are referenced by a live record of `volume` (what a member may be served). */
  async referencedIn (volume: string, hashes: Uint8Array[]): Promise<boolean[]> {
    this.assertOpen()
    if (hashes.length === 0) return []
    return await this.refs.hasMany(hashes.map(h => refKey(h, volume)))
  }

  // ---- peers and watermarks ----

  async getWatermark (vol: string, peerId: string): Promise<number> {
    this.assertOpen()
    return await this.watermarks.get(`${vol}${SEP}${peerId}`) ?? 0
  }

  async listWatermarks (vol: string): Promise<Record<string, number>> {
    this.assertOpen()
    const out: Record<string, number> = {}
    for await (const [key, value] of this.watermarks.iterator({ gte: `${vol}${SEP}`, lt: `${vol}${END}` })) {
      out[key.slice(vol.length + 1)] = value
    }
    return out
  }

  // ---- snapshots ----

  /**
   * Takes a snapshot: records the volume's current seq, nothing else (constant time, whatever
   * the volume's size). From then on commitFiles keeps each version the snapshot can see when
   * it is overwritten or deleted (copy-on-write), with its chunk references.
   */
  async createSnapshot (volName: string, name: string): Promise<SnapshotRecord> {
    this.assertOpen()
    return await this.mutex.run(async () => {
      const vol = await this.requireVolume(volName)
      const key = `${volName}${SEP}${name}`
      if (await this.snapshots.get(key) !== undefined) throw new ConflictError(Codes.SNAPSHOT_EXISTS, `volume '${volName}' already has a snapshot '${name}'`)
      const snap: SnapshotRecord = { volume: volName, name, seq: vol.seq, createdAt: Date.now() }
      await this.db.batch([{ type: 'put', key, value: snap, sublevel: this.snapshots } as Op], { sync: true })
      this.maxSnapshotSeq.set(volName, Math.max(this.maxSnapshotSeq.get(volName) ?? -1, snap.seq))
      return snap
    })
  }

  async listSnapshots (volName: string): Promise<SnapshotRecord[]> {
    this.assertOpen()
    const out: SnapshotRecord[] = []
    for await (const v of this.snapshots.values({ gte: `${volName}${SEP}`, lt: `${volName}${END}` })) out.push(v)
    return out.sort((a, b) => a.seq - b.seq || a.name.localeCompare(b.name))
  }

  async getSnapshot (volName: string, name: string): Promise<SnapshotRecord> {
    this.assertOpen()
    const snap = await this.snapshots.get(`${volName}${SEP}${name}`)
    if (snap === undefined) throw new NotFoundError(Codes.SNAPSHOT_NOT_FOUND, `volume '${volName}' has no snapshot '${name}'`, { volume: volName, snapshot: name })
    return snap
  }

  /**
   * Keeps a snapshot from deletion until the returned function is called: a dump being taken
   * pins the snapshots it reads, so what they reference stays out of reach of GC until it ends.
   */
  async pinSnapshot (volName: string, name: string): Promise<() => void> {
    this.assertOpen()
    const key = `${volName}${SEP}${name}`
    // Under the mutex: a deletion is either over (not found here) or sees the pin.
    await this.mutex.run(async () => {
      await this.getSnapshot(volName, name)
      this.pinned.set(key, (this.pinned.get(key) ?? 0) + 1)
    })
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (this.pinned.get(key) ?? 1) - 1
      if (n > 0) this.pinned.set(key, n)
      else this.pinned.delete(key)
    }
  }

  /** Deletes a snapshot and the kept versions no other snapshot needs (releasing their chunk references). */
  async deleteSnapshot (volName: string, name: string): Promise<{ versionsReleased: number }> {
    this.assertOpen()
    return await this.mutex.run(async () => {
      await this.getSnapshot(volName, name)
      if (this.pinned.has(`${volName}${SEP}${name}`)) {
        throw new ConflictError(Codes.SNAPSHOT_IN_USE, `snapshot '${name}' of '${volName}' is being dumped: delete it when the dump has ended`, { volume: volName, snapshot: name })
      }
      const rest = (await this.listSnapshots(volName)).filter(s => s.name !== name)
      const ops: Op[] = [{ type: 'del', key: `${volName}${SEP}${name}`, sublevel: this.snapshots }]
      const release = new Map<string, { key: Buffer, n: number }>()
      let released = 0
      for await (const [key, value] of this.versions.iterator({ gte: `${volName}${SEP}`, lt: `${volName}${END}` })) {
        const { rec, supersededAt } = decode(value) as { rec: FileRecord, supersededAt: number }
        if (rest.some(s => rec.seq <= s.seq && s.seq < supersededAt)) continue
        ops.push({ type: 'del', key, sublevel: this.versions })
        released++
        if (rec.deleted) continue
        const seen = new Set<string>()
        for (const h of chunkHashes(asFileRecord(rec))) {
          const hex = hashHex(h)
          if (seen.has(hex)) continue
          seen.add(hex)
          const e = release.get(hex) ?? { key: refKey(h, volName), n: 0 }
          e.n++
          release.set(hex, e)
        }
      }
      const entries = [...release.values()]
      const counts = await this.refs.getMany(entries.map(e => e.key))
      entries.forEach((e, i) => {
        const n = (counts[i] ?? 0) - e.n
        ops.push(n > 0 ? { type: 'put', key: e.key, value: n, sublevel: this.refs } : { type: 'del', key: e.key, sublevel: this.refs })
      })
      await this.db.batch(ops, { sync: true })
      this.maxSnapshotSeq.set(volName, rest.reduce((m, s) => Math.max(m, s.seq), -1))
      return { versionsReleased: released }
    })
  }

  /** The version of `path` a snapshot at `seq` shows (undefined: absent or deleted then). */
  async getFileAt (volName: string, path: string, seq: number): Promise<FileRecord | undefined> {
    this.assertOpen()
    const cur = await this.getFile(volName, path)
    if (cur !== undefined && cur.seq <= seq) return cur.deleted ? undefined : cur
    for await (const value of this.versions.values({ gte: `${volName}${SEP}${path}${SEP}`, lt: `${volName}${SEP}${path}${SEP}\uffff`, reverse: true })) {
      const { rec, supersededAt } = decode(value) as { rec: FileRecord, supersededAt: number }
      if (rec.seq <= seq && seq < supersededAt) {
        const r = asFileRecord(rec)
        return r.deleted ? undefined : r
      }
    }
    return undefined
  }

  /** The files a snapshot at `seq` shows under `prefix`, in path order. */
  async * listFilesAt (volName: string, seq: number, prefix = '/'): AsyncGenerator<FileRecord> {
    for await (const cur of this.listFiles(volName, prefix)) {
      const rec = cur.seq <= seq ? (cur.deleted ? undefined : cur) : await this.getFileAt(volName, cur.path, seq)
      if (rec !== undefined) yield rec
    }
  }

  // ---- all-mode transactions ----

  /** Stores a prepared write durably (its chunks must already be in the chunk store). */
  async putPrepared (p: PreparedWrite): Promise<void> {
    this.assertOpen()
    await this.chunks.sync()
    await this.db.batch([{ type: 'put', key: `${p.volume}${SEP}${p.txId}`, value: encode(p), sublevel: this.prepared } as Op], { sync: true })
    this.preparedGen++
  }

  async getPrepared (vol: string, txId: string): Promise<PreparedWrite | undefined> {
    this.assertOpen()
    const v = await this.prepared.get(`${vol}${SEP}${txId}`)
    if (v === undefined) return undefined
    const p = decode(v) as PreparedWrite
    return { ...p, record: asFileRecord({ ...p.record, seq: 0 }) }
  }

  async deletePrepared (vol: string, txId: string): Promise<void> {
    this.assertOpen()
    await this.db.batch([{ type: 'del', key: `${vol}${SEP}${txId}`, sublevel: this.prepared } as Op], { sync: true })
    this.preparedGen++
  }

  /**
   * The chunks (hex) of a volume's prepared writes, which its members may be served. Rebuilt
   * only when the prepared set changed: the chunk server asks per want-list, and a scan per
   * want-list of a large prepared file was quadratic (179,200 chunks: minutes instead of seconds).
   */
  async preparedChunks (vol: string): Promise<Set<string>> {
    const cached = this.preparedSets.get(vol)
    if (cached?.gen === this.preparedGen) return cached.set
    const gen = this.preparedGen
    const set = new Set<string>()
    for (const p of await this.listPrepared(vol)) for (const h of chunkHashes(p.record)) set.add(hashHex(h))
    this.preparedSets.set(vol, { gen, set })
    return set
  }

  async listPrepared (vol?: string): Promise<PreparedWrite[]> {
    this.assertOpen()
    const out: PreparedWrite[] = []
    const range = vol === undefined ? {} : { gte: `${vol}${SEP}`, lt: `${vol}${END}` }
    for await (const v of this.prepared.values(range)) out.push(decode(v) as PreparedWrite)
    return out
  }

  /** Whether an `all`-mode transaction was recorded as committed here. */
  async txCommitted (vol: string, txId: string): Promise<boolean> {
    this.assertOpen()
    return await this.txlog.get(`${vol}${SEP}${txId}`) === 'commit'
  }

  /** Records a transaction as aborted (so a late commit for it is refused). */
  async recordAbort (vol: string, txId: string): Promise<void> {
    this.assertOpen()
    await this.db.batch([
      { type: 'put', key: `${vol}${SEP}${txId}`, value: 'abort', sublevel: this.txlog } as Op,
      { type: 'del', key: `${vol}${SEP}${txId}`, sublevel: this.prepared } as Op
    ], { sync: true })
    this.preparedGen++
  }

  async txState (vol: string, txId: string): Promise<'commit' | 'abort' | undefined> {
    this.assertOpen()
    return await this.txlog.get(`${vol}${SEP}${txId}`) as 'commit' | 'abort' | undefined
  }

  /** Records how far `peer` has applied this node's change log of `vol` (from its index requests). */
  async noteApplied (vol: string, peer: string, seq: number): Promise<void> {
    this.assertOpen()
    const key = `${vol}${SEP}${peer}`
    if ((await this.applied.get(key) ?? -1) < seq) await this.applied.put(key, seq)
  }

  async listApplied (vol: string): Promise<Record<string, number>> {
    this.assertOpen()
    const out: Record<string, number> = {}
    for await (const [key, value] of this.applied.iterator({ gte: `${vol}${SEP}`, lt: `${vol}${END}` })) out[key.slice(vol.length + 1)] = value
    return out
  }

  /**
   * Log compaction: purges tombstones at or below `upto` (their records and change-log
   * entries) and raises the volume's log floor to `upto`. Below the floor "changes since N"
   * is no longer complete, so the index protocol refuses it and a member that far behind is
   * given a full copy instead of a wrong minicopy.
   */
  async compactLog (volName: string, upto: number): Promise<{ purged: number, floor: number }> {
    this.assertOpen()
    return await this.mutex.run(async () => {
      const vol = await this.requireVolume(volName)
      const floor = Math.max(vol.logFloor ?? 0, Math.min(upto, vol.seq))
      const ops: Op[] = []
      let purged = 0
      for await (const [key, path] of this.changes.iterator({ gt: seqKey(volName, 0), lte: seqKey(volName, floor) })) {
        const value = await this.files.get(`${volName}${SEP}${path}`)
        if (value === undefined) continue
        const rec = asFileRecord(decode(value))
        if (!rec.deleted) continue
        // A snapshot may still show an earlier version of this path: keep its tombstone.
        let kept = false
        for await (const _ of this.versions.keys({ gte: `${volName}${SEP}${path}${SEP}`, lt: `${volName}${SEP}${path}${SEP}\uffff`, limit: 1 })) kept = true
        if (kept) continue
        ops.push({ type: 'del', key, sublevel: this.changes })
        ops.push({ type: 'del', key: `${volName}${SEP}${path}`, sublevel: this.files })
        purged++
      }
      ops.push({ type: 'put', key: volName, value: encode({ ...vol, logFloor: floor }), sublevel: this.volumes })
      await this.db.batch(ops, { sync: true })
      return { purged, floor }
    })
  }

  /** Forgets every watermark of a volume: the next pull from each peer compares the full index. */
  async clearWatermarks (vol: string): Promise<void> {
    this.assertOpen()
    await this.mutex.run(async () => {
      const ops: Op[] = []
      for await (const key of this.watermarks.keys({ gte: `${vol}${SEP}`, lt: `${vol}${END}` })) ops.push({ type: 'del', key, sublevel: this.watermarks })
      if (ops.length > 0) await this.db.batch(ops, { sync: true })
    })
  }

  /**
   * Deletes a volume's replica from this node: its record, file records, change log, reference
   * counts and watermarks, in one synced batch. Chunk bytes stay until garbage collection.
   * Returns what was deleted. Only --discard-local calls this.
   */
  async deleteVolume (vol: string): Promise<{ files: number, bytes: number }> {
    this.assertOpen()
    return await this.mutex.run(async () => {
      await this.requireVolume(vol)
      // A volume recopied under the same id counts seqs from 0 again: forget its size.
      this.sizes.delete(vol)
      const ops: Op[] = [{ type: 'del', key: vol, sublevel: this.volumes }]
      let files = 0
      let bytes = 0
      const refs = new Map<string, Buffer>()
      for await (const [key, value] of this.files.iterator({ gte: `${vol}${SEP}`, lt: `${vol}${END}` })) {
        const rec = asFileRecord(decode(value))
        ops.push({ type: 'del', key, sublevel: this.files })
        if (rec.deleted) continue
        files++
        bytes += rec.size
        for (const h of chunkHashes(rec)) refs.set(hashHex(h), refKey(h, vol))
      }
      for (const key of refs.values()) ops.push({ type: 'del', key, sublevel: this.refs })
      for await (const key of this.changes.keys({ gte: `${vol}${SEP}`, lt: `${vol}${END}` })) ops.push({ type: 'del', key, sublevel: this.changes })
      for await (const key of this.watermarks.keys({ gte: `${vol}${SEP}`, lt: `${vol}${END}` })) ops.push({ type: 'del', key, sublevel: this.watermarks })
      await this.db.batch(ops, { sync: true })
      return { files, bytes }
    })
  }

  /** Live files and bytes of a volume (an index scan). */
  /**
   * Live files and bytes of a volume. A full scan, remembered per (volume id, seq): every change
   * of a live record takes a new seq, so status polls of an idle volume cost one lookup.
   */
  async volumeSize (vol: string): Promise<{ files: number, bytes: number }> {
    const rec = await this.getVolume(vol)
    const key = rec === undefined ? undefined : `${rec.id}:${rec.seq}`
    const cached = this.sizes.get(vol)
    if (key !== undefined && cached?.key === key) return { files: cached.files, bytes: cached.bytes }
    let files = 0
    let bytes = 0
    for await (const f of this.listFiles(vol)) {
      if (f.deleted) continue
      files++
      bytes += f.size
    }
    if (key !== undefined) this.sizes.set(vol, { key, files, bytes })
    return { files, bytes }
  }

  async putPeer (peer: PeerRecord): Promise<void> {
    this.assertOpen()
    await this.peers.put(peer.peerId, encode(peer))
  }

  async getPeer (peerId: string): Promise<PeerRecord | undefined> {
    this.assertOpen()
    const value = await this.peers.get(peerId)
    return value === undefined ? undefined : asPeerRecord(decode(value))
  }

  async listPeers (): Promise<PeerRecord[]> {
    this.assertOpen()
    const out: PeerRecord[] = []
    for await (const value of this.peers.values()) out.push(asPeerRecord(decode(value)))
    return out
  }

  async getMeta<T> (key: string): Promise<T | undefined> {
    this.assertOpen()
    return await this.meta.get(key) as T | undefined
  }

  async putMeta (key: string, value: unknown): Promise<void> {
    this.assertOpen()
    await this.db.batch([{ type: 'put', key, value, sublevel: this.meta } as Op], { sync: true })
  }
}
