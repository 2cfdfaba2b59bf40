import { open, readdir, mkdir, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { AbstractSublevel } from 'abstract-level'
import type { Level } from 'level'
import { Mutex } from './mutex.js'
import type { ChunkStore } from './chunk-store.js'

/** A pack is closed to appends once it reaches this size, and a new one started. */
export const PACK_TARGET_BYTES = 64 * 1024 * 1024
/** Largest single read getMany makes of adjacent chunks. */
const MAX_COALESCED_READ = 4 * 1024 * 1024
/** Open pack files kept for reads. */
const MAX_OPEN_PACKS = 64

type LocSublevel = AbstractSublevel<Level<string, Uint8Array>, string | Uint8Array, Uint8Array, Uint8Array>

const packName = (id: number): string => `pack-${String(id).padStart(8, '0')}.dat`

function encodeLoc (pack: number, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(16)
  b.writeUInt32BE(pack, 0)
  b.writeUIntBE(offset, 4, 6)
  b.writeUInt16BE(0, 10)
  b.writeUInt32BE(length, 12)
  return b
}

function decodeLoc (b: Uint8Array): { pack: number, offset: number, length: number } {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
  return { pack: v.readUInt32BE(0), offset: v.readUIntBE(4, 6), length: v.readUInt32BE(12) }
}

/**
 * Chunk bytes appended to pack files (DATA/chunks/pack-N.dat), located by a level sublevel
 * (sha256 -> pack, offset, length) in the index database. Appends are positional writes at
 * offsets reserved synchronously, so concurrent puts never overlap; a batch of chunks is one
 * write. sync() fsyncs every pack written since the last sync; the index batch that follows
 * (synced) makes the locations durable, so a record never reaches disk before its chunks.
 *
 * After a crash, a location may point at bytes that were never synced (another commit's
 * synced batch can carry it first); the merge after an unclean shutdown verifies chunks
 * against their hashes. Deleted chunks leave dead bytes in their pack until a repack.
 */
export class PackChunkStore implements ChunkStore {
  private active: { id: number, fh: FileHandle, size: number } | undefined
  private readonly readers = new Map<number, Promise<FileHandle>>()
  private readonly dirty = new Set<FileHandle>()
  private readonly writes = new Set<Promise<unknown>>()
  private readonly syncMutex = new Mutex()
  private rolling: Promise<void> | undefined

  private constructor (private readonly dir: string, private readonly loc: LocSublevel) {}

  static async open (dir: string, loc: LocSublevel): Promise<PackChunkStore> {
    await mkdir(dir, { recursive: true })
    const store = new PackChunkStore(dir, loc)
    const ids = (await readdir(dir)).map(f => /^pack-(\d+)\.dat$/.exec(f)?.[1]).filter((x): x is string => x !== undefined).map(Number)
    const last = ids.length > 0 ? Math.max(...ids) : 0
    // Appends always go to a fresh pack after open: a crashed pack's tail is never written over.
    await store.startPack(last + 1)
    return store
  }

  private async startPack (id: number): Promise<void> {
    const fh = await open(join(this.dir, packName(id)), 'wx+')
    this.active = { id, fh, size: 0 }
    this.readers.set(id, Promise.resolve(fh))
  }

  async has (hash: Uint8Array): Promise<boolean> {
    return await this.loc.has(Buffer.from(hash)) as boolean
  }

  async hasMany (hashes: Uint8Array[]): Promise<boolean[]> {
    if (hashes.length === 0) return []
    return await this.loc.hasMany(hashes.map(h => Buffer.from(h))) as boolean[]
  }

  async get (hash: Uint8Array): Promise<Uint8Array | undefined> {
    const l = await this.loc.get(Buffer.from(hash))
    return l === undefined ? undefined : await this.read(decodeLoc(l))
  }

  async getMany (hashes: Uint8Array[]): Promise<Array<Uint8Array | undefined>> {
    if (hashes.length === 0) return []
    const raw = await this.loc.getMany(hashes.map(h => Buffer.from(h)))
    const locs = raw.map(l => l === undefined ? undefined : decodeLoc(l))
    const out: Array<Uint8Array | undefined> = new Array(hashes.length).fill(undefined)
    // Chunks that lie back to back in one pack (a file written or fetched in order) are read
    // with one read and handed out as views of it: far fewer reads than one per chunk.
    const order = locs.map((_, i) => i).filter(i => locs[i] !== undefined)
      .sort((x, y) => locs[x]!.pack - locs[y]!.pack || locs[x]!.offset - locs[y]!.offset)
    const runs: number[][] = []
    for (const i of order) {
      const run = runs[runs.length - 1]
      const prev = run?.[run.length - 1]
      const l = locs[i]!
      if (run !== undefined && prev !== undefined && locs[prev]!.pack === l.pack && locs[prev]!.offset + locs[prev]!.length === l.offset &&
          l.offset + l.length - locs[run[0]]!.offset <= MAX_COALESCED_READ) run.push(i)
      else runs.push([i])
    }
    await Promise.all(runs.map(async run => {
      const first = locs[run[0]]!
      const last = locs[run[run.length - 1]]!
      const buf = await this.read({ pack: first.pack, offset: first.offset, length: last.offset + last.length - first.offset })
      for (const i of run) out[i] = buf.subarray(locs[i]!.offset - first.offset, locs[i]!.offset - first.offset + locs[i]!.length)
    }))
    return out
  }

  private async read ({ pack, offset, length }: { pack: number, offset: number, length: number }): Promise<Uint8Array> {
    const fh = await this.reader(pack)
    const buf = Buffer.allocUnsafe(length)
    let done = 0
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done)
      if (bytesRead === 0) throw new Error(`pack ${pack} is shorter than a chunk located in it`)
      done += bytesRead
    }
    return buf
  }

  private async reader (pack: number): Promise<FileHandle> {
    let fh = this.readers.get(pack)
    if (fh === undefined) {
      if (this.readers.size >= MAX_OPEN_PACKS) {
        for (const [id, old] of this.readers) {
          if (id === this.active?.id) continue
          this.readers.delete(id)
          // Reads still using the handle finish first: close it a little later.
          setTimeout(() => { void old.then(async h => { if (!this.dirty.has(h)) await h.close() }).catch(() => {}) }, 10_000).unref()
          break
        }
      }
      fh = open(join(this.dir, packName(pack)), 'r')
      this.readers.set(pack, fh)
      fh.catch(() => this.readers.delete(pack))
    }
    return await fh
  }

  async putMany (chunks: Array<{ hash: Uint8Array, bytes: Uint8Array }>): Promise<void> {
    if (chunks.length === 0) return
    while (this.rolling !== undefined) await this.rolling
    const active = this.active!
    // Reserve the region synchronously: concurrent putMany calls get disjoint offsets.
    const start = active.size
    const total = chunks.reduce((n, c) => n + c.bytes.byteLength, 0)
    active.size += total
    const locs: Array<{ key: Buffer, value: Buffer }> = []
    let off = start
    for (const c of chunks) {
      locs.push({ key: Buffer.from(c.hash), value: encodeLoc(active.id, off, c.bytes.byteLength) })
      off += c.bytes.byteLength
    }
    // One positional writev of every chunk: no concatenated copy of the batch.
    const write = (async () => {
      const { bytesWritten } = await active.fh.writev(chunks.map(c => c.bytes), start)
      if (bytesWritten >= total) return
      // A short write (rare): the rest, from where it stopped.
      const body = Buffer.concat(chunks.map(c => c.bytes), total)
      let done = bytesWritten
      while (done < total) {
        const r = await active.fh.write(body, done, total - done, start + done)
        done += r.bytesWritten
      }
    })()
    this.writes.add(write)
    this.dirty.add(active.fh)
    try {
      await write
    } finally {
      this.writes.delete(write)
    }
    await this.loc.batch(locs.map(l => ({ type: 'put' as const, key: l.key, value: l.value })))
    if (active.size >= PACK_TARGET_BYTES && this.active === active && this.rolling === undefined) {
      this.rolling = this.startPack(active.id + 1).finally(() => { this.rolling = undefined })
      await this.rolling
    }
  }

  /** Makes every earlier putMany durable: fsync of each pack written since the last sync. */
  async sync (): Promise<void> {
    await this.syncMutex.run(async () => {
      await Promise.allSettled([...this.writes])
      const handles = [...this.dirty]
      this.dirty.clear()
      await Promise.all(handles.map(async fh => { await fh.datasync() }))
    })
  }

  async delete (hashes: Uint8Array[]): Promise<void> {
    if (hashes.length === 0) return
    await this.loc.batch(hashes.map(h => ({ type: 'del' as const, key: Buffer.from(h) })))
  }

  async * keys (): AsyncIterable<Uint8Array> {
    for await (const key of this.loc.keys()) yield key as Uint8Array
  }

  async close (): Promise<void> {
    await this.sync()
    const handles = await Promise.allSettled([...this.readers.values()])
    this.readers.clear()
    await Promise.allSettled(handles.map(async r => { if (r.status === 'fulfilled') await r.value.close() }))
  }
}
