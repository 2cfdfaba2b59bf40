import { open, readdir, writeFile, mkdir, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { Mutex } from '../core/mutex.js'
import { noRepack, type ChunkLocationOp, type ChunkStore, type ChunkSublevel, type RepackOptions, type RepackResult } from './chunk-store.js'
import { byteLengthOf, piecesOf, type ChunkBytes } from '../core/hash.js'
import { PackTruncatedError } from '../core/errors.js'
import { logger } from '../core/log.js'
import { syncDir } from '../core/durable.js'
import { crashPoint } from '../core/crash-points.js'
import { decodeLoc, encodeLoc, packGone, packId, packName, writeAt } from './pack-locations.js'
import { PackReaders } from './pack-readers.js'
import { PendingLocations } from './pack-pending.js'
import { SyncedLengths } from './pack-synced.js'
import { liveBytes, sealedPacks } from './pack-scan.js'
import type { PackStoreOptions } from './pack-options.js'

const log = logger('packs')

import { PACK_TARGET_BYTES, REPACK_BATCH_BYTES, REPACK_BATCH_CHUNKS, MAX_PENDING_LOCATIONS, LAST_PACK } from './pack-options.js'
export { PACK_TARGET_BYTES } from './pack-options.js'

type LocSublevel = ChunkSublevel

export type { RepackPoint, PackStoreOptions } from './pack-options.js'

/**
 * Chunk bytes appended to pack files (DATA/chunks/pack-N.dat), located by a level sublevel
 * (sha256 -> pack, offset, length) in the index database. Appends are positional writes at
 * offsets reserved synchronously, so concurrent puts never overlap; a batch of chunks is one
 * write. A put's locations are held in memory (PendingLocations) until sync() has fsynced
 * every pack written since the last sync, and only then written to level: a location never
 * reaches disk before its bytes, so a later put that finds a chunk's location can reuse it.
 *
 * Bytes lost anyway (a pack deleted or cut short by hand or by a disk fault, or written by a
 * version without that order) read as missing: the stale location is dropped, so the chunk is
 * fetched from a peer or written again. Deleted chunks leave dead bytes in their pack until
 * repack() copies the live chunks of mostly dead packs forward and unlinks them.
 */
export class PackChunkStore implements ChunkStore {
  private active: { id: number, fh: FileHandle, size: number } | undefined
  /** Handles written since their last datasync, with their pack ids. */
  private readonly dirty = new Map<FileHandle, number>()
  private readonly synced: SyncedLengths | undefined
  private readonly readers: PackReaders
  private readonly writes = new Set<Promise<unknown>>()
  private readonly pending = new PendingLocations()
  /** Appends per pack whose locations are not written yet: such a pack is never repacked. */
  private readonly inflight = new Map<number, number>()
  private readonly syncMutex = new Mutex()
  /** Serialises location deletes with repack's compare-and-switch (a delete is never undone). */
  private readonly locMutex = new Mutex()
  private readonly repackMutex = new Mutex()
  private rolling: Promise<void> | undefined
  private readonly targetBytes: number

  private constructor (private readonly dir: string, private readonly loc: LocSublevel, private readonly opts: PackStoreOptions) {
    this.targetBytes = opts.targetBytes ?? PACK_TARGET_BYTES
    this.synced = opts.recordSynced === true ? new SyncedLengths(dir) : undefined
    this.readers = new PackReaders(dir, fh => this.dirty.has(fh), () => this.active?.id)
  }

  static async open (dir: string, loc: LocSublevel, opts: PackStoreOptions = {}): Promise<PackChunkStore> {
    await mkdir(dir, { recursive: true, mode: 0o700 }) // chunk bytes are plaintext: private (node/data-dir.ts)
    const store = new PackChunkStore(dir, loc, opts)
    const ids = (await readdir(dir)).map(packId).filter((x): x is number => x !== undefined)
    // The marker too: were the newest packs lost, their ids must not be reused (stale
    // locations into them would read another chunk's bytes).
    for (const f of await readdir(dir)) if (f.startsWith(LAST_PACK)) ids.push(Number(f.slice(LAST_PACK.length)) || 0)
    const last = ids.reduce((m, id) => Math.max(m, id), 0)
    // Appends always go to a fresh pack after open: a crashed pack's tail is never written over.
    await store.startPack(last + 1)
    return store
  }

  /** A new pack, its id recorded and its directory entry synced (a datasync of it does neither). */
  private async startPack (id: number): Promise<void> {
    const fh = await open(join(this.dir, packName(id)), 'wx+', 0o600)
    await writeFile(join(this.dir, `${LAST_PACK}${id}`), '', { mode: 0o600 })
    await syncDir(this.dir)
    // The previous marker (absent at the first start, or when packs were lost meanwhile).
    await unlink(join(this.dir, `${LAST_PACK}${id - 1}`)).catch(() => {})
    this.active = { id, fh, size: 0 }
    this.readers.add(id, fh)
  }

  async has (hash: Uint8Array): Promise<boolean> {
    return this.pending.get(hash) !== undefined || await this.loc.has(Buffer.from(hash))
  }

  async hasMany (hashes: Uint8Array[]): Promise<boolean[]> {
    if (hashes.length === 0) return []
    const stored = await this.loc.hasMany(hashes.map(h => Buffer.from(h)))
    return stored.map((s, i) => s || this.pending.get(hashes[i]) !== undefined)
  }

  async get (hash: Uint8Array): Promise<Uint8Array | undefined> { return (await this.getMany([hash]))[0] }

  async getMany (hashes: Uint8Array[]): Promise<Array<Uint8Array | undefined>> {
    if (hashes.length === 0) return []
    let raw: Array<Uint8Array | undefined> = []
    try {
      return await this.retryIfRepacked(async () => {
        raw = await this.locations(hashes)
        return await this.readers.readLocs(raw.map(l => l === undefined ? undefined : decodeLoc(l)))
      })
    } catch (err) {
      if (!packGone(err) && !(err instanceof PackTruncatedError)) throw err
    }
    // Rare (bytes lost in a crash or by hand): chunk by chunk; a lost one reads as missing.
    return await Promise.all(hashes.map(async (h, i) => {
      const l = raw[i]
      if (l === undefined) return undefined
      try {
        return await this.readers.read(decodeLoc(l))
      } catch (err) {
        if (!packGone(err) && !(err instanceof PackTruncatedError)) throw err
        return await this.forgetLost(h, l, err)
      }
    }))
  }

  /** Each chunk's location: one not yet synced (in memory) first, else the one in level. */
  private async locations (hashes: Uint8Array[]): Promise<Array<Uint8Array | undefined>> {
    const stored = await this.loc.getMany(hashes.map(h => Buffer.from(h)))
    return stored.map((l, i) => this.pending.get(hashes[i]) ?? l)
  }

  /**
   * Drops the location of a chunk whose bytes are gone (unless it moved meanwhile: then the
   * chunk is read again from there), so that has() no longer claims it and it is fetched or
   * written again.
   */
  private async forgetLost (hash: Uint8Array, l: Uint8Array, err: unknown): Promise<Uint8Array | undefined> {
    const key = Buffer.from(hash)
    const moved = await this.locMutex.run(async () => {
      const now = await this.loc.get(key)
      if (now !== undefined && !Buffer.from(l).equals(now)) return true
      if (now !== undefined) await this.loc.del(key)
      return false
    })
    if (moved) return await this.get(hash)
    log.error('chunk %s lost (%s): its location is dropped, the chunk reads as missing', key.toString('hex'), (err as Error).message)
    return undefined
  }

  /**
   * A location looked up just before a repack switched it may name a pack unlinked since:
   * the second look-up finds the chunk's new place (the switch precedes the unlink).
   */
  private async retryIfRepacked<T> (fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      if (!packGone(err)) throw err
      return await fn()
    }
  }

  async putMany (chunks: Array<{ hash: Uint8Array, bytes: ChunkBytes }>): Promise<void> {
    this.opts.onPut?.(chunks)
    if (chunks.length === 0) return
    // Bounds the memory of locations waiting for their fsync (fetches may not commit for long).
    if (this.pending.size >= MAX_PENDING_LOCATIONS) await this.sync()
    const { pack, locs } = await this.append(chunks.map(c => c.bytes))
    // The pack stays in flight (never repacked) until sync() writes these locations.
    this.pending.add(chunks.map(c => c.hash), locs, pack)
  }

  /**
   * Appends chunk bytes to the active pack (rolling it when full) and returns their encoded
   * locations. The pack counts as in flight until release(pack): the caller writes the
   * locations first, so a repack never takes a pack whose locations are still to come.
   * The handle is marked dirty again after the write: a sync that cleared it during the write
   * may not have covered these bytes.
   */
  private async append (chunks: ChunkBytes[]): Promise<{ pack: number, locs: Buffer[] }> {
    while (this.rolling !== undefined) await this.rolling
    const active = this.active!
    // Reserve the region synchronously: concurrent appends get disjoint offsets.
    const start = active.size
    const locs: Buffer[] = []
    const pieces: Uint8Array[] = []
    let off = start
    for (const c of chunks) {
      const n = byteLengthOf(c)
      locs.push(encodeLoc(active.id, off, n))
      off += n
      for (const piece of piecesOf(c)) pieces.push(piece)
    }
    const total = off - start
    active.size += total
    this.inflight.set(active.id, (this.inflight.get(active.id) ?? 0) + 1)
    const write = writeAt(active.fh, pieces, start, total)
    this.writes.add(write)
    this.dirty.set(active.fh, active.id)
    try {
      await write
      this.writes.delete(write)
      this.dirty.set(active.fh, active.id)
      if (active.size >= this.targetBytes && this.active === active && this.rolling === undefined) {
        this.rolling = this.startPack(active.id + 1).finally(() => { this.rolling = undefined })
        await this.rolling
      }
    } catch (err) {
      this.writes.delete(write)
      this.release(active.id)
      throw err
    }
    return { pack: active.id, locs }
  }

  private release (pack: number): void {
    const n = (this.inflight.get(pack) ?? 1) - 1
    if (n > 0) this.inflight.set(pack, n); else this.inflight.delete(pack)
  }

  /**
   * Makes every earlier putMany durable: fsync of each pack written since the last sync, then
   * (not before) the locations of those puts are written to level. That batch is not synced
   * itself: the synced index batch that follows, or any later synced batch, carries it.
   */
  async sync (): Promise<void> {
    const { ops, written } = await this.syncInto()
    try {
      if (ops.length > 0) await this.loc.batch(ops.map(({ type, key, value }) => ({ type, key, value })))
      written(true)
    } catch (err) {
      written(false)
      throw err
    }
  }

  /**
   * The packs fsynced as in sync(), their locations handed back as operations for the caller's
   * own synced batch (the same database): a group commit writes them with its records, one
   * level write fewer. `written(true)` once that batch is written; the locations stay readable
   * in memory until then. Another sync() meanwhile writes the same values again: harmless.
   */
  async syncInto (): Promise<{ ops: ChunkLocationOp[], written: (ok: boolean) => void }> {
    return await this.syncMutex.run(async () => {
      await Promise.allSettled([...this.writes])
      // Every location taken here had its write completed and its handle marked dirty.
      const { entries, packs } = this.pending.take()
      const handles = [...this.dirty]
      this.dirty.clear()
      const release = (): void => { for (const p of packs) this.release(p) }
      try {
        // Testing: a pack's length when its datasync begins is what a power loss keeps of it.
        const lengths = this.synced === undefined ? [] : await Promise.all(handles.map(async ([fh, id]): Promise<[number, number]> => [id, (await fh.stat()).size]))
        await Promise.all(handles.map(async ([fh]) => { await fh.datasync() }))
        await this.synced?.record(lengths)
      } catch (err) {
        release()
        throw err
      }
      const ops = entries.map(e => ({ type: 'put' as const, key: e.key, value: e.value, sublevel: this.loc }))
      return { ops, written: (ok) => { if (ok) this.pending.settle(entries); release() } }
    })
  }

  async delete (hashes: Uint8Array[]): Promise<void> {
    if (hashes.length === 0) return
    this.pending.delete(hashes)
    await this.locMutex.run(async () => {
      // Synced: a repack may unlink a pack as soon as its locations are gone, and a power loss
      // must not bring back locations that point into an unlinked pack.
      await this.loc.batch(hashes.map(h => ({ type: 'del' as const, key: Buffer.from(h) })), { sync: true } as never)
    })
  }

  async * keys (): AsyncIterable<Uint8Array> { for await (const key of this.loc.keys()) yield key }

  // ---- repack ----
  /**
   * Gives back the space of deleted chunks. Sealed packs (not the active one, no appends in
   * flight) with no live chunk are unlinked; those whose live bytes are below `liveBelow` of
   * their size have their live chunks copied to the active pack, in batches of about 4 MiB:
   * copy, fsync, switch the locations (one synced batch, compare-and-set), and only when every
   * batch is through, unlink. A crash before a switch leaves dead bytes in the new pack; after
   * it, a dead old pack; the next repack removes either. Callers serialise it with GC.
   */
  async repack (opts: RepackOptions = {}): Promise<RepackResult> {
    return await this.repackMutex.run(async () => {
      const result = noRepack()
      // A pack about to be unlinked must not be left in `dirty` (its handle is closed later).
      await this.sync()
      const liveBelow = opts.liveBelow ?? 0.5
      await this.sealActiveIfSparse(liveBelow, opts.signal)
      const sealed = await sealedPacks(this.dir, this.active!.id, this.inflight)
      if (sealed.size === 0) return result
      const live = await liveBytes(this.loc, sealed, opts.signal)
      const dead: number[] = []
      const sparse = new Set<number>()
      for (const [id, size] of sealed) {
        const l = live.get(id) ?? 0
        if (l === 0) dead.push(id)
        else if (l < liveBelow * size) sparse.add(id)
      }
      // The scan ran after the packs were sealed: no location can point into `dead` any more.
      for (const id of dead) await this.removePack(id, sealed.get(id)!, result)
      if (sparse.size === 0) return result
      const stuck = await this.moveLive(sparse, result, opts.signal)
      await this.opts.repackHook?.('switched')
      crashPoint('repack-switched')
      for (const id of sparse) {
        if (stuck.has(id)) continue
        await this.removePack(id, sealed.get(id)!, result)
        result.packsRewritten++
      }
      result.bytesFreed -= result.bytesCopied
      return result
    })
  }

  /**
   * Rolls a mostly dead active pack (a volume dropped soon after it was written) so that this
   * repack gives its space back, not the day the pack fills. The sealed packs' own scan decides
   * again, so appends that land meanwhile are never lost.
   */
  private async sealActiveIfSparse (liveBelow: number, signal?: AbortSignal): Promise<void> {
    const act = this.active!
    if (act.size === 0 || this.rolling !== undefined || (this.inflight.get(act.id) ?? 0) > 0) return
    const live = (await liveBytes(this.loc, new Map([[act.id, act.size]]), signal)).get(act.id) ?? 0
    if (live >= liveBelow * act.size || this.active !== act || this.rolling !== undefined) return
    this.rolling = this.startPack(act.id + 1).finally(() => { this.rolling = undefined })
    await this.rolling
  }

  /**
   * Copies every chunk located in `from` to the active pack, batch by batch. Returns the packs
   * that must stay: a chunk there could not be read whole (a crash lost bytes its location
   * names), so it keeps its location and its pack until the merge drops or refetches it.
   */
  private async moveLive (from: Set<number>, result: RepackResult, signal?: AbortSignal): Promise<Set<number>> {
    const stuck = new Set<number>()
    let batch: Array<{ key: Buffer, old: Buffer }> = []
    let bytes = 0
    // Level iterators read a snapshot: the switches made meanwhile are not seen again.
    for await (const [key, value] of this.loc.iterator()) {
      const l = decodeLoc(value)
      if (!from.has(l.pack)) continue
      batch.push({ key: Buffer.from(key), old: Buffer.from(value) })
      bytes += l.length
      if (bytes >= REPACK_BATCH_BYTES || batch.length >= REPACK_BATCH_CHUNKS) {
        signal?.throwIfAborted()
        await this.moveBatch(batch, stuck, result)
        batch = []
        bytes = 0
      }
    }
    if (batch.length > 0) await this.moveBatch(batch, stuck, result)
    return stuck
  }

  /** One repack batch: read, append, fsync (packs and directory), then switch the locations. */
  private async moveBatch (batch: Array<{ key: Buffer, old: Buffer }>, stuck: Set<number>, result: RepackResult): Promise<void> {
    const bytes = await this.readers.readForRepack(batch.map(e => decodeLoc(e.old)), stuck)
    const moving = batch.filter((_, i) => bytes[i] !== undefined)
    if (moving.length === 0) return
    const { pack, locs } = await this.append(bytes.filter((b): b is Uint8Array => b !== undefined))
    try {
      result.bytesCopied += locs.reduce((n, l) => n + decodeLoc(l).length, 0)
      await this.sync()
      // A new pack's directory entry must be durable before any location moves into it.
      await syncDir(this.dir)
      await this.opts.repackHook?.('copied')
      crashPoint('repack-copied')
      await this.switchLocations(moving.map((e, i) => ({ ...e, next: locs[i] })))
    } finally {
      this.release(pack)
    }
  }

  /**
   * Points each chunk at its copy, in one synced batch, unless its location changed since it
   * was read (deleted by GC's caller or the merge, or put again): that change wins.
   */
  private async switchLocations (entries: Array<{ key: Buffer, old: Buffer, next: Buffer }>): Promise<void> {
    await this.locMutex.run(async () => {
      const now = await this.loc.getMany(entries.map(e => e.key))
      const ops = entries.filter((e, i) => now[i] !== undefined && e.old.equals(now[i]))
        .map(e => ({ type: 'put' as const, key: e.key, value: e.next }))
      // classic-level honours `sync`; the sublevel type does not list it.
      if (ops.length > 0) await this.loc.batch(ops, { sync: true } as never)
    })
  }

  private async removePack (id: number, size: number, result: RepackResult): Promise<void> {
    await unlink(join(this.dir, packName(id))).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err })
    // Unlinked first, dropped second: a reader opening it meanwhile is dropped too, never cached.
    this.readers.drop(id)
    result.packsRemoved++
    result.bytesFreed += size
  }

  async close (): Promise<void> {
    await this.sync()
    await this.readers.closeAll()
  }
}
