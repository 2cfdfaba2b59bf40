import { encode, decode, asFileRecord } from '../core/codec.js'
import type { FileRecord } from '../core/records.js'
import type { ChunkStore } from './chunk-store.js'
import { ChangeCounts, type ChangeCause } from './change-counts.js'
import type { PreparedWrites } from './prepared.js'
import type { Volumes } from './volumes.js'
import { GroupCommit, type CommitListener, type Decide } from './group-commit.js'
import { SEP, END, seqKey, type StoreContext, type SnapshotHorizon, type Op } from './store-context.js'

export type { CommitContext, CommitListener } from './group-commit.js'

/**
 * File records and the change log: the index of each volume. Every change goes through
 * commitFiles(), under the commit mutex, as one synced batch.
 */
export class Files {
  /** Called after every commit that wrote file records (not for watermark-only commits). */
  readonly commitListeners = new Set<CommitListener>()
  /** Work counters (tests assert on work done rather than time): groups written, commits in them. */
  readonly counters = { versionsSaved: 0, groups: 0, groupedCommits: 0 }
  /** Local changes per volume by cause, since open (store/change-counts.ts). */
  readonly changes = new ChangeCounts()
  /** volumeSize's last answer per volume, valid while the volume's id and seq are the same. */
  private readonly sizes = new Map<string, { key: string, files: number, bytes: number }>()
  private readonly group: GroupCommit

  constructor (
    private readonly ctx: StoreContext,
    private readonly volumes: Volumes,
    private readonly prepared: PreparedWrites,
    private readonly horizon: SnapshotHorizon,
    chunks: ChunkStore
  ) {
    this.group = new GroupCommit({
      ctx, volumes, prepared, horizon, chunks, getFile: async (v, p) => await this.getFile(v, p),
      getFiles: async (keys) => (await ctx.sub.files.getMany(keys)).map(v => v === undefined ? undefined : asFileRecord(decode(v))),
      counters: this.counters, changes: this.changes, listeners: this.commitListeners
    })
  }

  async getFile (vol: string, path: string): Promise<FileRecord | undefined> {
    this.ctx.assertOpen()
    const value = await this.ctx.sub.files.get(`${vol}${SEP}${path}`)
    return value === undefined ? undefined : asFileRecord(decode(value))
  }

  /**
   * Records under `prefix` in path order, tombstones included (callers filter). `from`: start
   * at this path (>= prefix) instead, so a caller can skip a subtree (WebDAV's Depth 1).
   */
  async * listFiles (vol: string, prefix = '/', options: { signal?: AbortSignal, from?: string } = {}): AsyncGenerator<FileRecord> {
    this.ctx.assertOpen()
    const under = `${vol}${SEP}${prefix}`
    const from = options.from !== undefined && options.from > prefix ? `${vol}${SEP}${options.from}` : under
    // Keys under the prefix are contiguous from gte: stop at the first without it. (An upper
    // bound of `${prefix}\uffff` missed paths with characters at or above U+FFFF.)
    for await (const [key, value] of this.ctx.sub.files.iterator({ gte: from, lt: `${vol}${END}`, signal: options.signal } as never)) {
      if (!key.startsWith(under)) break
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
   * before the batch is written. Concurrent commits share one batch (group-commit.ts).
   */
  async commitFiles (volName: string, decide: Decide, defaultCause: ChangeCause = 'write', paths?: readonly string[]): Promise<FileRecord[]> {
    return await this.group.commit(volName, decide, defaultCause, paths)
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
