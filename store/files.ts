import { encode, decode, asFileRecord } from '../core/codec.js'
import { hashHex } from '../core/hash.js'
import { logger } from '../core/log.js'
import { chunkHashes, type FileRecord, type NewFileRecord, type VolumeRecord } from '../core/records.js'
import type { ChunkStore } from './chunk-store.js'
import { ChangeCounts, type ChangeCause } from './change-counts.js'
import type { PreparedWrites } from './prepared.js'
import type { Volumes } from './volumes.js'
import { SEP, END, refKey, versionKey, seqKey, type StoreContext, type SnapshotHorizon, type Op } from './store-context.js'

const log = logger('store')

/** What a commit callback sees: current records (including earlier ones of the same commit). */
export interface CommitContext {
  volume: VolumeRecord
  get: (path: string) => Promise<FileRecord | undefined>
  /** Advance a peer's watermark in the same atomic batch as the records. */
  setWatermark: (peerId: string, seq: number) => void
  /** Record an `all`-mode transaction as committed, and drop its prepared record, in the same batch. */
  settleTx: (txId: string) => void
  /** Why the record at `path` is written (counted once the batch is written; default: the commit's cause). */
  cause: (path: string, cause: ChangeCause) => void
}

export type CommitListener = (volume: VolumeRecord, records: FileRecord[]) => void

/**
 * File records and the change log: the index of each volume. Every change goes through
 * commitFiles(), under the commit mutex, as one synced batch.
 */
export class Files {
  /** Called after every commit that wrote file records (not for watermark-only commits). */
  readonly commitListeners = new Set<CommitListener>()
  /** Work counters (tests assert on work done rather than time). */
  readonly counters = { versionsSaved: 0 }
  /** Local changes per volume by cause, since open (store/change-counts.ts). */
  readonly changes = new ChangeCounts()
  /** volumeSize's last answer per volume, valid while the volume's id and seq are the same. */
  private readonly sizes = new Map<string, { key: string, files: number, bytes: number }>()

  constructor (
    private readonly ctx: StoreContext,
    private readonly volumes: Volumes,
    private readonly prepared: PreparedWrites,
    private readonly horizon: SnapshotHorizon,
    private readonly chunks: ChunkStore
  ) {}

  async getFile (vol: string, path: string): Promise<FileRecord | undefined> {
    this.ctx.assertOpen()
    const value = await this.ctx.sub.files.get(`${vol}${SEP}${path}`)
    return value === undefined ? undefined : asFileRecord(decode(value))
  }

  /** Records under `prefix` in path order, tombstones included (callers filter). */
  async * listFiles (vol: string, prefix = '/', options: { signal?: AbortSignal } = {}): AsyncGenerator<FileRecord> {
    this.ctx.assertOpen()
    const gte = `${vol}${SEP}${prefix}`
    // Keys under the prefix are contiguous from gte: stop at the first without it. (An upper
    // bound of `${prefix}\uffff` missed paths with characters at or above U+FFFF.)
    for await (const [key, value] of this.ctx.sub.files.iterator({ gte, lt: `${vol}${END}`, signal: options.signal } as never)) {
      if (!key.startsWith(gte)) break
      yield asFileRecord(decode(value))
    }
  }

  /**
   * Records changed after `afterSeq`, in change-log order. Each path appears once, at its
   * latest change: the log keeps one entry per path (older entries are deleted when a path
   * changes), so "everything since N" is always complete and never grows past the index.
   */
  async * changesSince (vol: string, afterSeq: number, options: { signal?: AbortSignal, batch?: number } = {}): AsyncGenerator<FileRecord> {
    this.ctx.assertOpen()
    const batchSize = options.batch ?? 256
    let from = afterSeq
    while (true) {
      options.signal?.throwIfAborted()
      const entries: Array<[string, string]> = []
      for await (const entry of this.ctx.sub.changes.iterator({ gt: seqKey(vol, from), lt: `${vol}${END}`, limit: batchSize })) {
        entries.push(entry)
      }
      if (entries.length === 0) return
      const values = await this.ctx.sub.files.getMany(entries.map(([, path]) => `${vol}${SEP}${path}`))
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
   * watermark set. Chunks they reference must already be in the chunk store: they are synced
   * before the batch is written.
   */
  async commitFiles (volName: string, decide: (ctx: CommitContext) => Promise<NewFileRecord[]>, defaultCause: ChangeCause = 'write'): Promise<FileRecord[]> {
    this.ctx.assertOpen()
    return await this.ctx.mutex.run(async () => {
      const { sub } = this.ctx
      let volume = await this.volumes.requireVolume(volName)
      const pending = new Map<string, FileRecord>()
      const watermarkOps: Op[] = []
      const causes = new Map<string, ChangeCause>()
      const ctx: CommitContext = {
        volume,
        get: async (path) => pending.get(path) ?? await this.getFile(volName, path),
        setWatermark: (peerId, seq) => {
          watermarkOps.push({ type: 'put', key: `${volName}${SEP}${peerId}`, value: seq, sublevel: sub.watermarks })
        },
        settleTx: (txId) => { watermarkOps.push(...this.prepared.settleOps(volName, txId)) },
        cause: (path, cause) => { causes.set(path, cause) }
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
          ops.push({ type: 'del', key: seqKey(volName, current.seq), sublevel: sub.changes })
        }
        const rec: FileRecord = { ...n, seq: ++seq }
        if (current !== undefined && !fromThisCommit && current.seq <= this.horizon.of(volName)) {
          // Copy-on-write: a snapshot still shows this version; keep it (and its chunk refs).
          ops.push({ type: 'put', key: versionKey(volName, current.path, current.seq), value: encode({ rec: current, supersededAt: rec.seq }), sublevel: sub.versions })
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
        if (finals.get(rec.path) !== rec) ops.push({ type: 'del', key: seqKey(volName, rec.seq), sublevel: sub.changes })
      }
      for (const rec of finals.values()) {
        ops.push({ type: 'put', key: `${volName}${SEP}${rec.path}`, value: encode(rec), sublevel: sub.files })
        ops.push({ type: 'put', key: seqKey(volName, rec.seq), value: rec.path, sublevel: sub.changes })
      }
      const changed = [...refDelta.values()].filter(e => e.delta !== 0)
      if (changed.length > 0) {
        const keys = changed.map(e => refKey(e.hash, volName))
        const counts = await sub.refs.getMany(keys)
        changed.forEach((e, i) => {
          const n = (counts[i] ?? 0) + e.delta
          const key = keys[i]
          ops.push(n > 0 ? { type: 'put', key, value: n, sublevel: sub.refs } : { type: 'del', key, sublevel: sub.refs })
        })
      }
      volume = { ...volume, seq, dirty: true }
      ops.push({ type: 'put', key: volName, value: encode(volume), sublevel: sub.volumes })
      ops.push(...watermarkOps)
      await this.ctx.write(ops)
      const result = [...finals.values()]
      for (const rec of result) this.changes.add(volName, causes.get(rec.path) ?? defaultCause)
      if (result.length > 0) {
        for (const listener of this.commitListeners) {
          try { listener(volume, result) } catch (err) { log.error('commit listener failed: %O', err) }
        }
      }
      return result
    })
  }

  /**
   * Log compaction: purges tombstones at or below `upto` (their records and change-log
   * entries) and raises the volume's log floor to `upto`. Below the floor "changes since N"
   * is no longer complete, so the index protocol refuses it and a member that far behind is
   * given a full copy instead of a wrong minicopy.
   */
  async compactLog (volName: string, upto: number): Promise<{ purged: number, floor: number }> {
    this.ctx.assertOpen()
    return await this.ctx.mutex.run(async () => {
      const { sub } = this.ctx
      const vol = await this.volumes.requireVolume(volName)
      const floor = Math.max(vol.logFloor ?? 0, Math.min(upto, vol.seq))
      const ops: Op[] = []
      let purged = 0
      for await (const [key, path] of sub.changes.iterator({ gt: seqKey(volName, 0), lte: seqKey(volName, floor) })) {
        const value = await sub.files.get(`${volName}${SEP}${path}`)
        if (value === undefined) continue
        const rec = asFileRecord(decode(value))
        if (!rec.deleted) continue
        // A snapshot may still show an earlier version of this path: keep its tombstone.
        const kept = await sub.versions.keys({ gte: `${volName}${SEP}${path}${SEP}`, lt: `${volName}${SEP}${path}${SEP}\uffff`, limit: 1 }).all()
        if (kept.length > 0) continue
        ops.push({ type: 'del', key, sublevel: sub.changes })
        ops.push({ type: 'del', key: `${volName}${SEP}${path}`, sublevel: sub.files })
        purged++
      }
      ops.push({ type: 'put', key: volName, value: encode({ ...vol, logFloor: floor }), sublevel: sub.volumes })
      await this.ctx.write(ops)
      return { purged, floor }
    })
  }

  /**
   * How many changes of this node's log come after `afterSeq`, and their live bytes: what a
   * member that has applied the log to `afterSeq` still lacks. Stops at `cap` changes
   * (`complete: false`), so a status poll stays cheap whatever the lag.
   */
  async changesAfter (vol: string, afterSeq: number, cap = 10_000): Promise<{ changes: number, bytes: number, complete: boolean }> {
    let changes = 0
    let bytes = 0
    for await (const rec of this.changesSince(vol, afterSeq)) {
      if (changes >= cap) return { changes, bytes, complete: false }
      changes++
      if (!rec.deleted) bytes += rec.size
    }
    return { changes, bytes, complete: true }
  }

  /** Forgets volumeSize's answer: a volume deleted and created again counts seqs from 0 again. */
  forgetSize (vol: string): void { this.sizes.delete(vol) }

  /**
   * Live files and bytes of a volume. A full scan, remembered per (volume id, seq): every change
   * of a live record takes a new seq, so status polls of an idle volume cost one lookup.
   */
  async volumeSize (vol: string): Promise<{ files: number, bytes: number }> {
    const rec = await this.volumes.getVolume(vol)
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
}
