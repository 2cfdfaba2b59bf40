/**
 * Minimal chunk-store prototypes for bench/chunk-backends.ts only: enough to measure where chunk
 * bytes should live, not production code (no crash recovery, no pack compaction, no locking).
 * Both have the methods of the product's ChunkStore interface (store/chunk-store.ts) that the
 * put and get paths use, so the winner can slot in behind it; they do not declare
 * `implements ChunkStore` so that interface can change without breaking the benchmarks.
 *
 * - FileChunkStore: one file per chunk at DIR/<first 2 hex>/<hex> (256 fan-out dirs, made up
 *   front). `syncEach`: every file is written, fsynced and closed before putMany returns, and
 *   sync() fsyncs the fan-out dirs. Otherwise putMany only writes, and sync() fsyncs every file
 *   written since the last sync (re-opened; 16 in flight), then the dirs.
 * - PackChunkStore: chunks appended to pack files of up to 64 MiB (one positional writev per
 *   putMany), located by an index hash -> (pack, offset, length) in a level sublevel. Index
 *   entries of unsynced chunks wait in memory; sync() fsyncs the pack(s) first, then writes the
 *   index entries in one synced level batch. A pack that fills is fsynced and closed at once
 *   and its index entries written (unsynced: made durable by the next synced batch).
 */
import { mkdir, open, readFile, writeFile, access, readdir, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { AbstractSublevel } from 'abstract-level'
import type { Level } from 'level'
import { MiB, pool } from './lib.js'

/** What the benchmark uses of a chunk store: the put path (hasMany, putMany, sync) and get. */
export interface BenchChunkStore {
  hasMany: (hashes: Uint8Array[]) => Promise<boolean[]>
  get: (hash: Uint8Array) => Promise<Uint8Array | undefined>
  putMany: (chunks: Array<{ hash: Uint8Array, bytes: Uint8Array }>) => Promise<void>
  sync: () => Promise<void>
  close?: () => Promise<void>
}

const hex = (h: Uint8Array): string => Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString('hex')
const SYNC_IN_FLIGHT = 16

async function fsyncPath (path: string): Promise<void> {
  const fh = await open(path, 'r')
  try { await fh.sync() } finally { await fh.close() }
}

export class FileChunkStore implements BenchChunkStore {
  private pending: string[] = []
  private readonly dirtyDirs = new Set<string>()

  private constructor (readonly dir: string, readonly syncEach: boolean) {}

  static async open (dir: string, syncEach: boolean): Promise<FileChunkStore> {
    for (let i = 0; i < 256; i++) await mkdir(join(dir, i.toString(16).padStart(2, '0')), { recursive: true })
    return new FileChunkStore(dir, syncEach)
  }

  private path (h: Uint8Array): string {
    const x = hex(h)
    return join(this.dir, x.slice(0, 2), x)
  }

  async has (h: Uint8Array): Promise<boolean> {
    try { await access(this.path(h)); return true } catch { return false }
  }

  async hasMany (hashes: Uint8Array[]): Promise<boolean[]> {
    return await Promise.all(hashes.map(async h => await this.has(h)))
  }

  async get (h: Uint8Array): Promise<Uint8Array | undefined> {
    try {
      return await readFile(this.path(h))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  async putMany (chunks: Array<{ hash: Uint8Array, bytes: Uint8Array }>): Promise<void> {
    await Promise.all(chunks.map(async c => {
      const p = this.path(c.hash)
      this.dirtyDirs.add(p.slice(0, p.lastIndexOf('/')))
      if (!this.syncEach) {
        await writeFile(p, c.bytes)
        this.pending.push(p)
        return
      }
      const fh = await open(p, 'w')
      try {
        await fh.write(c.bytes)
        await fh.sync()
      } finally {
        await fh.close()
      }
    }))
  }

  async sync (): Promise<void> {
    const files = this.pending
    this.pending = []
    await pool(files, SYNC_IN_FLIGHT, fsyncPath)
    const dirs = [...this.dirtyDirs]
    this.dirtyDirs.clear()
    await pool(dirs, SYNC_IN_FLIGHT, fsyncPath)
  }

  async delete (hashes: Uint8Array[]): Promise<void> {
    await Promise.all(hashes.map(async h => { await rm(this.path(h), { force: true }) }))
  }

  async * keys (): AsyncIterable<Uint8Array> {
    for (const d of await readdir(this.dir)) {
      for (const f of await readdir(join(this.dir, d))) yield Buffer.from(f, 'hex')
    }
  }

  async close (): Promise<void> {}
}

type IndexSublevel = AbstractSublevel<Level<string, Uint8Array>, string | Uint8Array, Uint8Array, Uint8Array>

interface Loc { pack: number, offset: number, length: number }

const encodeLoc = (l: Loc): Uint8Array => {
  const b = Buffer.allocUnsafe(16)
  b.writeUInt32BE(l.pack, 0)
  b.writeBigUInt64BE(BigInt(l.offset), 4)
  b.writeUInt32BE(l.length, 12)
  return b
}
const decodeLoc = (b: Uint8Array): Loc => {
  const x = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
  return { pack: x.readUInt32BE(0), offset: Number(x.readBigUInt64BE(4)), length: x.readUInt32BE(12) }
}

export class PackChunkStore implements BenchChunkStore {
  /** Written to a pack, not yet in the index. */
  private readonly pending = new Map<string, { hash: Uint8Array, loc: Loc }>()
  private writer: { id: number, fh: FileHandle, size: number } | undefined
  private readonly readers = new Map<number, Promise<FileHandle>>()
  private nextPack = 0

  private constructor (readonly dir: string, private readonly db: Level<string, Uint8Array>, private readonly index: IndexSublevel, readonly packSize: number) {}

  /** `index` is a sublevel of `db`, so its batches can share db's synced write-ahead log. */
  static async open (dir: string, db: Level<string, Uint8Array>, index: IndexSublevel, packSize = 64 * MiB): Promise<PackChunkStore> {
    await mkdir(dir, { recursive: true })
    return new PackChunkStore(dir, db, index, packSize)
  }

  private packPath (id: number): string { return join(this.dir, `pack-${String(id).padStart(6, '0')}`) }

  async has (h: Uint8Array): Promise<boolean> {
    return this.pending.has(hex(h)) || await this.index.has(Buffer.from(h))
  }

  async hasMany (hashes: Uint8Array[]): Promise<boolean[]> {
    if (hashes.length === 0) return []
    const inIndex = await this.index.hasMany(hashes.map(h => Buffer.from(h)))
    return hashes.map((h, i) => inIndex[i] || this.pending.has(hex(h)))
  }

  private async locate (h: Uint8Array): Promise<Loc | undefined> {
    const p = this.pending.get(hex(h))
    if (p !== undefined) return p.loc
    const v = await this.index.get(Buffer.from(h))
    return v === undefined ? undefined : decodeLoc(v)
  }

  private async reader (pack: number): Promise<FileHandle> {
    let r = this.readers.get(pack)
    if (r === undefined) {
      r = open(this.packPath(pack), 'r')
      this.readers.set(pack, r)
    }
    return await r
  }

  async get (h: Uint8Array): Promise<Uint8Array | undefined> {
    const loc = await this.locate(h)
    if (loc === undefined) return undefined
    const fh = await this.reader(loc.pack)
    const buf = Buffer.allocUnsafe(loc.length)
    const { bytesRead } = await fh.read(buf, 0, loc.length, loc.offset)
    if (bytesRead !== loc.length) throw new Error(`short read from pack ${loc.pack} at ${loc.offset}`)
    return buf
  }

  /** fsyncs and closes the current pack, then writes its pending index entries (unsynced). */
  private async sealPack (): Promise<void> {
    if (this.writer === undefined) return
    await this.writer.fh.sync()
    await this.writer.fh.close()
    this.writer = undefined
    await this.flushIndex(false)
  }

  private async flushIndex (sync: boolean): Promise<void> {
    const ops = [...this.pending.values()].map(e => ({ type: 'put' as const, key: Buffer.from(e.hash), value: encodeLoc(e.loc), sublevel: this.index }))
    await this.db.batch(ops as never, { sync })
    this.pending.clear()
  }

  async putMany (chunks: Array<{ hash: Uint8Array, bytes: Uint8Array }>): Promise<void> {
    const fresh = chunks.filter(c => !this.pending.has(hex(c.hash)))
    if (fresh.length === 0) return
    const bytes = fresh.reduce((n, c) => n + c.bytes.byteLength, 0)
    if (this.writer !== undefined && this.writer.size + bytes > this.packSize) await this.sealPack()
    if (this.writer === undefined) {
      const id = this.nextPack++
      this.writer = { id, fh: await open(this.packPath(id), 'w'), size: 0 }
    }
    const w = this.writer
    const { bytesWritten } = await w.fh.writev(fresh.map(c => c.bytes), w.size)
    if (bytesWritten !== bytes) throw new Error(`short writev to pack ${w.id}: ${bytesWritten} of ${bytes}`)
    let offset = w.size
    for (const c of fresh) {
      this.pending.set(hex(c.hash), { hash: c.hash, loc: { pack: w.id, offset, length: c.bytes.byteLength } })
      offset += c.bytes.byteLength
    }
    w.size = offset
  }

  async sync (): Promise<void> {
    await this.writer?.fh.sync()
    await this.flushIndex(true)
  }

  async delete (hashes: Uint8Array[]): Promise<void> {
    // A real store would mark the space for pack compaction; the prototype only unindexes.
    await this.index.batch(hashes.map(h => ({ type: 'del' as const, key: Buffer.from(h) })))
  }

  async * keys (): AsyncIterable<Uint8Array> {
    for (const e of this.pending.values()) yield e.hash
    for await (const k of this.index.keys()) yield k
  }

  async close (): Promise<void> {
    await this.sealPack()
    for (const r of this.readers.values()) await (await r).close()
    this.readers.clear()
  }
}
