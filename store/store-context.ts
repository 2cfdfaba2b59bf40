import type { Level } from 'level'
import type { AbstractBatchOperation } from 'abstract-level'
import { ReplicantError, Codes } from '../core/errors.js'
import { Mutex } from '../core/mutex.js'

export type Db = Level<string, Uint8Array>
/** One operation of an atomic batch over several sublevels of the one database. */
export type Op = AbstractBatchOperation<Db, unknown, unknown>

/** A frozen, read-only view of a volume at one change-log sequence number. */
export interface SnapshotRecord { volume: string, name: string, seq: number, createdAt: number }

// Keys are `${volume}${SEP}${rest}`; `${volume}${END}` bounds a volume's range.
export const SEP = '\x00'
export const END = '\x01'
/** The key range of one volume in a sublevel keyed by volume first. */
export const volumeRange = (vol: string): { gte: string, lt: string } => ({ gte: `${vol}${SEP}`, lt: `${vol}${END}` })
/** Reference counts are kept per (chunk, volume): the hash first, so one chunk's volumes are adjacent. */
export const refKey = (hash: Uint8Array, vol: string): Buffer => Buffer.concat([hash, Buffer.from(vol, 'utf8')])
export const versionKey = (vol: string, path: string, seq: number): string => `${vol}${SEP}${path}${SEP}${seq.toString(16).padStart(16, '0')}`
export const seqKey = (vol: string, seq: number): string => `${vol}${SEP}${seq.toString(16).padStart(16, '0')}`

/** The twelve sublevels of the store's database (docs/ARCHITECTURE.md describes each). */
export function openSublevels (db: Db) {
  return {
    volumes: db.sublevel<string, Uint8Array>('volumes', { valueEncoding: 'view' }),
    files: db.sublevel<string, Uint8Array>('files', { valueEncoding: 'view' }),
    changes: db.sublevel<string, string>('changes', { valueEncoding: 'utf8' }),
    refs: db.sublevel<Uint8Array, number>('refs', { keyEncoding: 'buffer', valueEncoding: 'json' }),
    peers: db.sublevel<string, Uint8Array>('peers', { valueEncoding: 'view' }),
    watermarks: db.sublevel<string, number>('watermarks', { valueEncoding: 'json' }),
    meta: db.sublevel<string, unknown>('meta', { valueEncoding: 'json' }),
    applied: db.sublevel<string, number>('applied', { valueEncoding: 'json' }),
    prepared: db.sublevel<string, Uint8Array>('prepared', { valueEncoding: 'view' }),
    txlog: db.sublevel<string, string>('txlog', { valueEncoding: 'json' }),
    snapshots: db.sublevel<string, SnapshotRecord>('snapshots', { valueEncoding: 'json' }),
    versions: db.sublevel<string, Uint8Array>('versions', { valueEncoding: 'view' })
  }
}

export type Sublevels = ReturnType<typeof openSublevels>

/**
 * What every concern of the store shares: the database and its sublevels, the commit mutex
 * that serialises index changes, the maintenance lock of GC and repack (always taken before
 * `mutex` where both are held), and whether the store is still open.
 */
export class StoreContext {
  readonly sub: Sublevels
  readonly mutex = new Mutex()
  readonly maintenance = new Mutex()
  /** Aborted by close(): a repack in progress stops at its next batch. */
  private readonly closing = new AbortController()
  private closed = false
  /**
   * Encoded volume records as last written through write() or read (store/volumes.ts): every
   * put takes the volume record, so reading it from level each time cost a thread-pool round
   * trip per request. All volume writes go through write(); `volumeWrites` keeps a read that
   * raced with a write from caching the older value.
   */
  private readonly volumeBytes = new Map<string, Uint8Array>()
  private volumeWrites = 0

  constructor (readonly db: Db) {
    this.sub = openSublevels(db)
  }

  get isOpen (): boolean { return !this.closed }
  get closingSignal (): AbortSignal { return this.closing.signal }

  assertOpen (): void {
    if (this.closed) throw new ReplicantError(Codes.STORE_CLOSED, 'store is closed')
  }

  startClosing (): void { this.closing.abort() }
  markClosed (): void { this.closed = true }

  /** One synced, atomic batch over any of the sublevels. */
  async write (ops: Op[]): Promise<void> {
    const volumeOps = ops.filter(op => op.sublevel === this.sub.volumes)
    if (volumeOps.length > 0) this.volumeWrites++
    try {
      await this.db.batch<unknown, unknown>(ops, { sync: true })
    } finally {
      // Failed or not, level may hold either state: forget, the next read asks level. Counted
      // again at the end: a read that overlapped the write in any way caches nothing.
      if (volumeOps.length > 0) this.volumeWrites++
      for (const op of volumeOps) this.volumeBytes.delete(op.key as string)
    }
    for (const op of volumeOps) if (op.type === 'put') this.volumeBytes.set(op.key as string, op.value as Uint8Array)
  }

  /** A volume's encoded record, from the cache when it holds it. */
  async volumeRecord (name: string): Promise<Uint8Array | undefined> {
    const cached = this.volumeBytes.get(name)
    if (cached !== undefined) return cached
    const writes = this.volumeWrites
    const value = await this.sub.volumes.get(name)
    if (value !== undefined && writes === this.volumeWrites) this.volumeBytes.set(name, value)
    return value
  }
}

/**
 * Per volume, the seq of its newest snapshot: commitFiles keeps a version at or below it when
 * overwritten (copy-on-write); snapshots raise and lower it.
 */
export class SnapshotHorizon {
  private readonly seqs = new Map<string, number>()

  of (vol: string): number { return this.seqs.get(vol) ?? -1 }
  raise (vol: string, seq: number): void { this.seqs.set(vol, Math.max(this.of(vol), seq)) }
  set (vol: string, seq: number): void { this.seqs.set(vol, seq) }
}
