/**
 * Group commit: commits that arrive while a group is being made durable wait in a queue and
 * go together into the next group, which takes the commit mutex once, runs each commit's
 * `decide` in arrival order (each sees the records of the commits before it in the group),
 * fsyncs the chunk store once and writes one synced level batch. Every caller is answered
 * after that batch returned, never before (docs/ARCHITECTURE.md, "Group commit").
 *
 *   state of a commit   what holds it
 *   queued              `queue`, waiting for the mutex (or for the group ahead to finish)
 *   decided             its operations appended to the group's batch, not written
 *   durable | failed    the batch written (answered with its records) or its decide or the
 *                       batch failed (rejected; a failed decide leaves the others going)
 */
import { encode } from '../core/codec.js'
import { ReplicantError, Codes } from '../core/errors.js'
import { hashHex } from '../core/hash.js'
import { logger } from '../core/log.js'
import { crashPoint } from '../core/crash-points.js'
import { chunkHashes, type FileRecord, type NewFileRecord, type VolumeRecord } from '../core/records.js'
import type { ChunkStore } from './chunk-store.js'
import type { ChangeCause, ChangeCounts } from './change-counts.js'
import type { PreparedWrites } from './prepared.js'
import type { Volumes } from './volumes.js'
import { SEP, refKey, versionKey, seqKey, type StoreContext, type SnapshotHorizon, type Op } from './store-context.js'

const log = logger('store')

/** Most commits in one group (bounds the batch and the memory of one group). */
export const MAX_GROUP_COMMITS = 256

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

export type Decide = (ctx: CommitContext) => Promise<NewFileRecord[]>

interface Job {
  volName: string
  decide: Decide
  cause: ChangeCause
  /** Paths the decide will read, looked up for the whole group at once. */
  paths: readonly string[]
  resolve: (records: FileRecord[]) => void
  reject: (err: unknown) => void
}

/** What the commits decided so far in a group change for those after them. */
interface Group {
  volumes: Map<string, VolumeRecord>
  /** `vol \0 path` -> the newest record of the group. */
  records: Map<string, FileRecord>
  /** `vol \0 path` -> the record level holds (read once per group; the mutex keeps it current). */
  stored: Map<string, Promise<FileRecord | undefined>>
  /** refKey hex -> the reference count change of the group so far (read and written once, at the end). */
  refs: Map<string, { key: Buffer, delta: number }>
  ops: Op[]
  done: Array<{ job: Job, volume: VolumeRecord, result: FileRecord[], causes: Map<string, ChangeCause> }>
}

export interface GroupCommitDeps {
  ctx: StoreContext
  volumes: Volumes
  prepared: PreparedWrites
  horizon: SnapshotHorizon
  chunks: ChunkStore
  getFile: (vol: string, path: string) => Promise<FileRecord | undefined>
  /** Records by `vol \0 path` key, in one look-up. */
  getFiles: (keys: string[]) => Promise<Array<FileRecord | undefined>>
  counters: { versionsSaved: number, groups: number, groupedCommits: number }
  changes: ChangeCounts
  listeners: Set<CommitListener>
}

export class GroupCommit {
  private readonly queue: Job[] = []
  private draining = false

  constructor (private readonly d: GroupCommitDeps) {}

  /** Queues a commit; resolves once the batch holding it is durable. `paths`: those `decide` reads (a hint). */
  async commit (volName: string, decide: Decide, cause: ChangeCause, paths: readonly string[] = []): Promise<FileRecord[]> {
    this.d.ctx.assertOpen()
    return await new Promise<FileRecord[]>((resolve, reject) => {
      this.queue.push({ volName, decide, cause, paths, resolve, reject })
      this.drain()
    })
  }

  /** One group at a time; the commits queued while it was written form the next one. */
  private drain (): void {
    if (this.draining) return
    this.draining = true
    void this.d.ctx.mutex.run(async () => {
      const jobs = this.queue.splice(0, MAX_GROUP_COMMITS)
      await this.runGroup(jobs)
    }).finally(() => {
      this.draining = false
      if (this.queue.length > 0) this.drain()
    })
  }

  /** Settles every job of the group; never throws. */
  private async runGroup (jobs: Job[]): Promise<void> {
    if (!this.d.ctx.isOpen) {
      for (const j of jobs) j.reject(new ReplicantError(Codes.STORE_CLOSED, 'store is closed'))
      return
    }
    const g: Group = { volumes: new Map(), records: new Map(), stored: new Map(), refs: new Map(), ops: [], done: [] }
    await this.prefetch(g, jobs)
    for (const job of jobs) {
      try {
        await this.decideOne(g, job)
      } catch (err) {
        job.reject(err)
      }
    }
    if (g.ops.length > 0) {
      try {
        g.ops.push(...await this.refOps(g))
        // Chunk bytes fsynced before the records that name them are written; their locations
        // go into the same synced batch as the records (or, without syncInto, just before it).
        const { chunks } = this.d
        const synced = chunks.syncInto !== undefined ? await chunks.syncInto() : await chunks.sync().then(() => undefined)
        crashPoint('commit-synced')
        try {
          await this.d.ctx.write(synced === undefined ? g.ops : [...synced.ops as Op[], ...g.ops])
          synced?.written(true)
        } catch (err) {
          synced?.written(false)
          throw err
        }
        crashPoint('commit-written')
      } catch (err) {
        for (const e of g.done) e.job.reject(err)
        return
      }
      this.d.counters.groups++
      this.d.counters.groupedCommits += g.done.length
    }
    for (const e of g.done) {
      for (const rec of e.result) this.d.changes.add(e.job.volName, e.causes.get(rec.path) ?? e.job.cause)
      if (e.result.length > 0) {
        for (const listener of this.d.listeners) {
          try { listener(e.volume, e.result) } catch (err) { log.error('commit listener failed: %O', err) }
        }
      }
      e.job.resolve(e.result)
    }
  }

  /**
   * The stored records of the paths the group's commits said they read, in one look-up: the
   * decides run one after the other, and a look-up each was a thread-pool round trip each.
   * A failed look-up only costs the hint (each decide then reads its own).
   */
  private async prefetch (g: Group, jobs: Job[]): Promise<void> {
    const keys = [...new Set(jobs.flatMap(j => j.paths.map(p => `${j.volName}${SEP}${p}`)))]
    if (keys.length < 2) return
    try {
      const recs = await this.d.getFiles(keys)
      keys.forEach((k, i) => g.stored.set(k, Promise.resolve(recs[i])))
    } catch (err) {
      log('group look-up failed, each commit reads its own: %s', (err as Error).message)
    }
  }

  /**
   * The reference counts the group changed: one look-up of them all, one put (or delete, at
   * zero) each. Counts feed no decide, so they wait for the end of the group.
   */
  private async refOps (g: Group): Promise<Op[]> {
    const changed = [...g.refs.values()].filter(e => e.delta !== 0)
    if (changed.length === 0) return []
    const { refs } = this.d.ctx.sub
    const stored = await refs.getMany(changed.map(e => e.key))
    return changed.map((e, i): Op => {
      const n = (stored[i] ?? 0) + e.delta
      return n > 0 ? { type: 'put', key: e.key, value: n, sublevel: refs } : { type: 'del', key: e.key, sublevel: refs }
    })
  }

  /**
   * Runs one commit's decide against the group so far and appends its operations. Nothing of
   * the group changes unless it succeeds (a decide that throws fails alone).
   */
  private async decideOne (g: Group, job: Job): Promise<void> {
    const { ctx, volumes, prepared, horizon } = this.d
    const { sub } = ctx
    const { volName } = job
    let volume = g.volumes.get(volName) ?? await volumes.requireVolume(volName)
    const mine = new Map<string, FileRecord>()
    const extraOps: Op[] = []
    const causes = new Map<string, ChangeCause>()
    const stored = async (key: string, path: string): Promise<FileRecord | undefined> => {
      let rec = g.stored.get(key)
      if (rec === undefined) {
        rec = this.d.getFile(volName, path)
        g.stored.set(key, rec)
        rec.catch(() => { g.stored.delete(key) })
      }
      return await rec
    }
    const get = async (path: string): Promise<FileRecord | undefined> => {
      const key = `${volName}${SEP}${path}`
      return mine.get(path) ?? g.records.get(key) ?? await stored(key, path)
    }
    const next = await job.decide({
      volume,
      get,
      setWatermark: (peerId, seq) => {
        extraOps.push({ type: 'put', key: `${volName}${SEP}${peerId}`, value: seq, sublevel: sub.watermarks })
      },
      settleTx: (txId) => { extraOps.push(...prepared.settleOps(volName, txId)) },
      cause: (path, cause) => { causes.set(path, cause) }
    })
    if (next.length === 0 && extraOps.length === 0) {
      g.done.push({ job, volume, result: [], causes })
      return
    }
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
    let versionsSaved = 0
    for (const n of next) {
      const fromThisCommit = mine.has(n.path)
      const current = await get(n.path)
      if (current !== undefined) {
        ops.push({ type: 'del', key: seqKey(volName, current.seq), sublevel: sub.changes })
      }
      const rec: FileRecord = { ...n, seq: ++seq }
      // A record of an earlier commit of this group has a seq above any snapshot's: no copy.
      if (current !== undefined && !fromThisCommit && current.seq <= horizon.of(volName)) {
        // Copy-on-write: a snapshot still shows this version; keep it (and its chunk refs).
        ops.push({ type: 'put', key: versionKey(volName, current.path, current.seq), value: encode({ rec: current, supersededAt: rec.seq }), sublevel: sub.versions })
        versionsSaved++
      } else {
        addRefs(current, -1)
      }
      addRefs(rec, +1)
      mine.set(rec.path, rec)
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
    volume = { ...volume, seq, dirty: true }
    // Within one batch a later put of the same key wins: the group's last volume record holds.
    ops.push({ type: 'put', key: volName, value: encode(volume), sublevel: sub.volumes })
    ops.push(...extraOps)
    // Decided: from here on nothing can fail, so the group takes it.
    g.volumes.set(volName, volume)
    for (const rec of finals.values()) g.records.set(`${volName}${SEP}${rec.path}`, rec)
    for (const e of refDelta.values()) {
      if (e.delta === 0) continue
      const key = refKey(e.hash, volName)
      const hex = key.toString('hex')
      const sum = g.refs.get(hex) ?? { key, delta: 0 }
      sum.delta += e.delta
      g.refs.set(hex, sum)
    }
    g.ops.push(...ops)
    this.d.counters.versionsSaved += versionsSaved
    g.done.push({ job, volume, result: [...finals.values()], causes })
  }
}
