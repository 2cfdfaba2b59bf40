import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { ReplicantError, Codes } from '../core/errors.js'
import { logger } from '../core/log.js'
import type { FileRecord, VolumeRecord, PeerRecord, NewFileRecord } from '../core/records.js'
import { LevelChunkStore, type ChunkStore, type PutObserver, type RepackOptions, type RepackResult } from './chunk-store.js'
import { PackChunkStore, type RepackPoint } from './pack-chunk-store.js'
import { StoreContext, SnapshotHorizon, type Db, type SnapshotRecord } from './store-context.js'
import { Volumes } from './volumes.js'
import { Files, type CommitContext, type CommitListener } from './files.js'
import { Snapshots } from './snapshots.js'
import { PreparedWrites, type PreparedWrite, type TxState } from './prepared.js'
import { ChunkCollector, type GcResult } from './gc.js'
import { YoungChunks } from './young-chunks.js'
import { Peers } from './peers.js'
import { deleteReplica, type ReplicaDeleted } from './replica-delete.js'
import type { ChangeCause, LocalChanges } from './change-counts.js'

export type { NewFileRecord } from '../core/records.js'
export type { CommitContext } from './files.js'
export type { SnapshotRecord } from './store-context.js'
export type { PreparedWrite } from './prepared.js'
export type { GcResult } from './gc.js'
export type { ReplicaDeleted } from './replica-delete.js'
export type { ChangeCause, LocalChanges } from './change-counts.js'

const log = logger('store')

/** Where chunk bytes live: pack files (default; see docs/CHUNKING.md) or values in level. */
export type ChunkBackend = 'pack' | 'level'

export interface StoreOptions {
  chunkBackend?: ChunkBackend
  /** Pack size at which a new pack is started (default 64 MiB; tests use small packs). */
  packTargetBytes?: number
  /** Test hook only: awaited at each repack crash point (a kill -9 test pauses there). */
  repackHook?: (point: RepackPoint) => Promise<void>
  /** Testing only: append each pack's fsynced length to chunks/synced-lengths (power-loss simulation). */
  recordSynced?: boolean
}

type OwnChunkStore = ChunkStore & { close?: () => Promise<void> }

/** Opens the chunk store of `backend`, telling `onPut` of every put. */
async function openChunks (dir: string, db: Db, backend: ChunkBackend, opts: StoreOptions, onPut: PutObserver): Promise<OwnChunkStore> {
  if (backend === 'level') {
    return new LevelChunkStore(db.sublevel<Uint8Array, Uint8Array>('chunks', { keyEncoding: 'buffer', valueEncoding: 'view' }), onPut)
  }
  return await PackChunkStore.open(join(dir, 'chunks'), db.sublevel<Uint8Array, Uint8Array>('chunkloc', { keyEncoding: 'buffer', valueEncoding: 'view' }), {
    ...(opts.packTargetBytes !== undefined ? { targetBytes: opts.packTargetBytes } : {}),
    ...(opts.repackHook !== undefined ? { repackHook: opts.repackHook } : {}),
    ...(opts.recordSynced === true ? { recordSynced: true } : {}),
    onPut
  })
}

/**
 * The node's store: one level database with one sublevel per concern (see
 * docs/ARCHITECTURE.md), and the chunk store. This class only opens and closes it; each
 * concern lives in its own module over one StoreContext, and the methods here hand over:
 *   volumes.ts    volume records
 *   files.ts      file records and the change log (commitFiles, the one way the index changes)
 *   snapshots.ts  snapshots and the versions kept for them
 *   prepared.ts   prepared all-mode writes and the transaction log
 *   gc.ts         reference counts, garbage collection, repack (young-chunks.ts: writes in progress)
 *   peers.ts      peer records, watermarks, applied marks
 */
export class Store {
  readonly dir: string
  readonly chunks: OwnChunkStore
  /** Volumes whose dirty flag was found set when the store opened: they were not closed cleanly. */
  readonly foundDirty: string[] = []
  /** Work counters (tests assert on work done rather than time). */
  readonly counters: { versionsSaved: number, groups: number, groupedCommits: number }
  /** Called after every commit that wrote file records (not for watermark-only commits). */
  readonly commitListeners: Set<CommitListener>
  private readonly ctx: StoreContext
  private readonly volumes: Volumes
  private readonly files: Files
  private readonly snapshots: Snapshots
  private readonly prepared: PreparedWrites
  private readonly collector: ChunkCollector
  private readonly young: YoungChunks
  private readonly peers: Peers
  private readonly horizon = new SnapshotHorizon()

  private constructor (dir: string, ctx: StoreContext, chunks: OwnChunkStore, young: YoungChunks) {
    this.dir = dir
    this.ctx = ctx
    this.chunks = chunks
    this.young = young
    const horizon = this.horizon
    this.volumes = new Volumes(ctx)
    this.prepared = new PreparedWrites(ctx, chunks)
    this.files = new Files(ctx, this.volumes, this.prepared, horizon, chunks)
    this.snapshots = new Snapshots(ctx, this.volumes, this.files, horizon)
    this.collector = new ChunkCollector(ctx, chunks, young, this.prepared)
    this.peers = new Peers(ctx)
    this.counters = this.files.counters
    this.commitListeners = this.files.commitListeners
  }

  /** Opens (creating if needed) the store under `dir`/store. Refuses a store another process holds. */
  static async open (dir: string, opts: StoreOptions = {}): Promise<Store> {
    const path = join(dir, 'store')
    await mkdir(path, { recursive: true, mode: 0o700 }) // private: node/data-dir.ts
    const db: Db = new Level<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new ReplicantError(Codes.DATA_DIR_LOCKED, `data dir ${dir} is in use by another replicant process`, { dir })
      }
      throw err
    }
    const ctx = new StoreContext(db)
    const young = new YoungChunks()
    let chunks: OwnChunkStore
    try {
      // The backend is fixed when a store is first used: a store keeps the one it was made with.
      const backend = await ctx.sub.meta.get('chunkBackend') as ChunkBackend | undefined ?? opts.chunkBackend ?? 'pack'
      chunks = await openChunks(dir, db, backend, opts, young.onPut)
      await ctx.sub.meta.put('chunkBackend', backend)
    } catch (err) {
      await db.close()
      throw err
    }
    const store = new Store(dir, ctx, chunks, young)
    store.foundDirty.push(...await store.volumes.dirtyNames())
    if (store.foundDirty.length > 0) log('volumes not closed cleanly: %o', store.foundDirty)
    await store.snapshots.loadHorizon()
    return store
  }

  get isOpen (): boolean { return this.ctx.isOpen }

  /** Clears the dirty flag of every volume (a clean close), then closes the database. */
  async close (): Promise<void> {
    if (!this.ctx.isOpen) return
    this.ctx.startClosing()
    await this.ctx.maintenance.run(async () => await this.ctx.mutex.run(async () => {
      if (!this.ctx.isOpen) return
      const ops = await this.volumes.cleanCloseOps()
      await this.chunks.close?.()
      if (ops.length > 0) await this.ctx.write(ops)
      this.ctx.markClosed()
      await this.ctx.db.close()
    }))
  }

  // ---- volumes (volumes.ts; deleteVolume in replica-delete.ts, volumeSize in files.ts) ----

  async getVolume (name: string): Promise<VolumeRecord | undefined> { return await this.volumes.getVolume(name) }
  async requireVolume (name: string): Promise<VolumeRecord> { return await this.volumes.requireVolume(name) }
  async listVolumes (): Promise<VolumeRecord[]> { return await this.volumes.listVolumes() }
  async createVolume (vol: VolumeRecord): Promise<VolumeRecord> { return await this.volumes.createVolume(vol) }
  /** Read-modify-write of a volume record under the commit mutex. */
  async updateVolume (name: string, fn: (vol: VolumeRecord) => VolumeRecord): Promise<VolumeRecord> { return await this.volumes.updateVolume(name, fn) }
  /**
   * Deletes a volume's replica from this node, all of it (replica-delete.ts): records, log,
   * snapshots, kept versions, prepared writes, transaction log, marks and references; chunks
   * stay until GC. `guard` sees the volume under the commit mutex and may refuse by throwing.
   */
  async deleteVolume (vol: string, guard?: (rec: VolumeRecord) => void): Promise<ReplicaDeleted> {
    return await deleteReplica(this.ctx, this.volumes, this.horizon, {
      pinned: v => this.snapshots.hasPins(v),
      forget: v => { this.files.forgetSize(v); this.files.changes.forget(v); this.prepared.invalidate(v) }
    }, vol, guard)
  }
  /** Live files and bytes of a volume. */
  async volumeSize (vol: string): Promise<{ files: number, bytes: number }> { return await this.files.volumeSize(vol) }

  // ---- files and the change log (files.ts) ----

  async getFile (vol: string, path: string): Promise<FileRecord | undefined> { return await this.files.getFile(vol, path) }
  /** Records under `prefix` in path order, tombstones included (callers filter). */
  listFiles (vol: string, prefix = '/', options: { signal?: AbortSignal, from?: string } = {}): AsyncGenerator<FileRecord> { return this.files.listFiles(vol, prefix, options) }
  /** Records changed after `afterSeq`, in change-log order, each path once. */
  changesSince (vol: string, afterSeq: number, options: { signal?: AbortSignal, batch?: number } = {}): AsyncGenerator<FileRecord> {
    return this.files.changesSince(vol, afterSeq, options)
  }

  /** Changes after `afterSeq` (at most `cap` counted) and their live bytes. */
  async changesAfter (vol: string, afterSeq: number, cap?: number): Promise<{ changes: number, bytes: number, complete: boolean }> {
    return await this.files.changesAfter(vol, afterSeq, cap)
  }

  /** The only way the index changes: see Files.commitFiles. `paths`: those `decide` will read (looked up with the group's). */
  async commitFiles (volName: string, decide: (ctx: CommitContext) => Promise<NewFileRecord[]>, cause?: ChangeCause, paths?: readonly string[]): Promise<FileRecord[]> {
    return await this.files.commitFiles(volName, decide, cause, paths)
  }

  /** Local changes of a volume by cause since the store opened (store/change-counts.ts). */
  localChanges (volName: string): LocalChanges { return this.files.changes.of(volName) }

  /** Purges tombstones at or below `upto` and raises the volume's log floor. */
  async compactLog (volName: string, upto: number): Promise<{ purged: number, floor: number }> { return await this.files.compactLog(volName, upto) }

  // ---- snapshots (snapshots.ts) ----

  async createSnapshot (volName: string, name: string): Promise<SnapshotRecord> { return await this.snapshots.createSnapshot(volName, name) }
  async listSnapshots (volName: string): Promise<SnapshotRecord[]> { return await this.snapshots.listSnapshots(volName) }
  async getSnapshot (volName: string, name: string): Promise<SnapshotRecord> { return await this.snapshots.getSnapshot(volName, name) }
  /** Keeps a snapshot from deletion until the returned function is called. */
  async pinSnapshot (volName: string, name: string): Promise<() => void> { return await this.snapshots.pinSnapshot(volName, name) }
  async deleteSnapshot (volName: string, name: string): Promise<{ versionsReleased: number }> { return await this.snapshots.deleteSnapshot(volName, name) }
  /** The version of `path` a snapshot at `seq` shows (undefined: absent or deleted then). */
  async getFileAt (volName: string, path: string, seq: number): Promise<FileRecord | undefined> { return await this.snapshots.getFileAt(volName, path, seq) }
  /** The files a snapshot at `seq` shows under `prefix`, in path order. */
  listFilesAt (volName: string, seq: number, prefix = '/'): AsyncGenerator<FileRecord> { return this.snapshots.listFilesAt(volName, seq, prefix) }

  // ---- all-mode transactions (prepared.ts) ----

  /** Stores a prepared write durably (its chunks must already be in the chunk store). */
  async putPrepared (p: PreparedWrite): Promise<void> { await this.prepared.putPrepared(p) }
  async getPrepared (vol: string, txId: string): Promise<PreparedWrite | undefined> { return await this.prepared.getPrepared(vol, txId) }
  async deletePrepared (vol: string, txId: string): Promise<void> { await this.prepared.deletePrepared(vol, txId) }
  /** The chunks (hex) of a volume's prepared writes, which its members may be served. */
  async preparedChunks (vol: string): Promise<Set<string>> { return await this.prepared.preparedChunks(vol) }
  async listPrepared (vol?: string): Promise<PreparedWrite[]> { return await this.prepared.listPrepared(vol) }
  /** Whether an `all`-mode transaction was recorded as committed here. */
  async txCommitted (vol: string, txId: string): Promise<boolean> { return await this.prepared.txCommitted(vol, txId) }
  /** Records a transaction as aborted (so a late commit for it is refused). */
  async recordAbort (vol: string, txId: string): Promise<void> { await this.prepared.recordAbort(vol, txId) }
  async txState (vol: string, txId: string): Promise<TxState | undefined> { return await this.prepared.txState(vol, txId) }

  // ---- chunk references, GC and repack (gc.ts, young-chunks.ts) ----

  /** Marks chunks as in use by a write in progress (found already stored, so not rewritten). */
  touchChunks (hashes: Uint8Array[]): void { this.young.touch(hashes) }
  /** Chunks kept from GC as young right now (a bounded set: see young-chunks.ts). */
  get youngChunks (): number { return this.young.size }

  /** Deletes every chunk nothing references, then (unless `repack: false`) repacks. */
  async collectGarbage (opts: { youngMs?: number, signal?: AbortSignal, repack?: boolean | RepackOptions } = {}): Promise<GcResult> {
    return await this.collector.collectGarbage(opts)
  }

  /** Gives the pack space of deleted chunks back. */
  async repack (opts: RepackOptions = {}): Promise<RepackResult> { return await this.collector.repack(opts) }
  /** How many live file records reference `hash`, in `volume` or (without it) in all volumes. */
  async refCount (hash: Uint8Array, volume?: string): Promise<number> { return await this.collector.refCount(hash, volume) }
  /** Which of `hashes` are referenced by a live record of `volume` (what a member may be served). */
  async referencedIn (volume: string, hashes: Uint8Array[]): Promise<boolean[]> { return await this.collector.referencedIn(volume, hashes) }

  // ---- peers, watermarks and applied marks (peers.ts) ----

  async getWatermark (vol: string, peerId: string): Promise<number> { return await this.peers.getWatermark(vol, peerId) }
  async listWatermarks (vol: string): Promise<Record<string, number>> { return await this.peers.listWatermarks(vol) }
  /** Forgets every watermark of a volume: the next pull from each peer compares the full index. */
  async clearWatermarks (vol: string): Promise<void> { await this.peers.clearWatermarks(vol) }
  /** Records how far `peer` has applied this node's change log of `vol`. */
  async noteApplied (vol: string, peer: string, seq: number): Promise<void> { await this.peers.noteApplied(vol, peer, seq) }
  async listApplied (vol: string): Promise<Record<string, number>> { return await this.peers.listApplied(vol) }
  async putPeer (peer: PeerRecord): Promise<void> { await this.peers.putPeer(peer) }
  async getPeer (peerId: string): Promise<PeerRecord | undefined> { return await this.peers.getPeer(peerId) }
  async listPeers (): Promise<PeerRecord[]> { return await this.peers.listPeers() }
  async deletePeer (peerId: string): Promise<void> { await this.peers.deletePeer(peerId) }

  // ---- store metadata ----

  async getMeta<T> (key: string): Promise<T | undefined> {
    this.ctx.assertOpen()
    return await this.ctx.sub.meta.get(key) as T | undefined
  }

  async putMeta (key: string, value: unknown): Promise<void> {
    this.ctx.assertOpen()
    await this.ctx.write([{ type: 'put', key, value, sublevel: this.ctx.sub.meta }])
  }

  async deleteMeta (key: string): Promise<void> {
    this.ctx.assertOpen()
    await this.ctx.write([{ type: 'del', key, sublevel: this.ctx.sub.meta }])
  }
}
