import { open, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { PackTruncatedError } from '../core/errors.js'
import { logger } from '../core/log.js'
import { coalesce, packName, type Loc } from './pack-locations.js'

const log = logger('packs')

/** Open pack files kept for reads. */
const MAX_OPEN_PACKS = 64
/** How long a dropped read handle stays open for reads that already hold it. */
const CLOSE_DELAY_MS = 10_000

/**
 * The read side of the pack files: a bounded cache of open handles, one per pack, and reads of
 * chunk locations through them (adjacent chunks coalesced into one read).
 */
export class PackReaders {
  private readonly handles = new Map<number, Promise<FileHandle>>()

  /**
   * `unsynced` tells whether a handle still has writes to fsync: such a handle is left open
   * when dropped (the writer's sync needs it). `pinned` is a pack never evicted (the active one).
   */
  constructor (
    private readonly dir: string,
    private readonly unsynced: (fh: FileHandle) => boolean,
    private readonly pinned: () => number | undefined
  ) {}

  /** Registers the handle a writer opened, so reads of a fresh pack share it. */
  add (pack: number, fh: FileHandle): void {
    this.handles.set(pack, Promise.resolve(fh))
  }

  /** Chunks that lie back to back in one pack are read with one read and handed out as views of it. */
  async readLocs (locs: Array<Loc | undefined>): Promise<Array<Uint8Array | undefined>> {
    const out = new Array<Uint8Array | undefined>(locs.length).fill(undefined)
    await Promise.all(coalesce(locs).map(async run => {
      const first = locs[run[0]]!
      const last = locs[run[run.length - 1]]!
      const buf = await this.read({ pack: first.pack, offset: first.offset, length: last.offset + last.length - first.offset })
      for (const i of run) out[i] = buf.subarray(locs[i]!.offset - first.offset, locs[i]!.offset - first.offset + locs[i]!.length)
    }))
    return out
  }

  async read ({ pack, offset, length }: Loc): Promise<Uint8Array> {
    const fh = await this.reader(pack)
    const buf = Buffer.allocUnsafe(length)
    let done = 0
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done)
      if (bytesRead === 0) throw new PackTruncatedError(pack, offset, length)
      done += bytesRead
    }
    return buf
  }

  /** Coalesced reads of a batch; a chunk that cannot be read whole marks its pack as stuck. */
  async readForRepack (locs: Loc[], stuck: Set<number>): Promise<Array<Uint8Array | undefined>> {
    try {
      return await this.readLocs(locs)
    } catch (err) {
      if (!(err instanceof PackTruncatedError)) throw err
    }
    // Rare (a crash lost unsynced bytes): chunk by chunk, to keep every readable one.
    return await Promise.all(locs.map(async l => {
      try {
        return await this.read(l)
      } catch (err) {
        if (!(err instanceof PackTruncatedError)) throw err
        log.error('repack: %s; pack %d kept', err.message, l.pack)
        stuck.add(l.pack)
        return undefined
      }
    }))
  }

  private async reader (pack: number): Promise<FileHandle> {
    let fh = this.handles.get(pack)
    if (fh === undefined) {
      if (this.handles.size >= MAX_OPEN_PACKS) {
        for (const id of this.handles.keys()) {
          if (id === this.pinned()) continue
          this.drop(id)
          break
        }
      }
      fh = open(join(this.dir, packName(pack)), 'r')
      this.handles.set(pack, fh)
      fh.catch(() => this.handles.delete(pack))
    }
    return await fh
  }

  /** Forgets a pack's read handle; reads still using it finish first, so it is closed a little later. */
  drop (pack: number): void {
    const old = this.handles.get(pack)
    if (old === undefined) return
    this.handles.delete(pack)
    setTimeout(() => { void old.then(async h => { if (!this.unsynced(h)) await h.close() }).catch(() => {}) }, CLOSE_DELAY_MS).unref()
  }

  async closeAll (): Promise<void> {
    const handles = await Promise.allSettled([...this.handles.values()])
    this.handles.clear()
    await Promise.allSettled(handles.map(async r => { if (r.status === 'fulfilled') await r.value.close() }))
  }
}
