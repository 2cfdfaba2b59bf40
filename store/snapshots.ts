import { ConflictError, NotFoundError, Codes } from '../core/errors.js'
import { decode, asFileRecord } from '../core/codec.js'
import { hashHex } from '../core/hash.js'
import { chunkHashes, type FileRecord } from '../core/records.js'
import type { Files } from './files.js'
import type { Volumes } from './volumes.js'
import { SEP, volumeRange, refKey, type StoreContext, type SnapshotHorizon, type SnapshotRecord, type Op } from './store-context.js'

/** A version commitFiles kept for a snapshot: the record and the seq of the change that replaced it. */
interface KeptVersion { rec: FileRecord, supersededAt: number }

/**
 * Snapshots and the versions kept for them. A snapshot is only a seq; commitFiles keeps each
 * version a snapshot can see when it is overwritten (copy-on-write, see SnapshotHorizon), and
 * reads at a snapshot look at the current record first, then at the kept versions.
 */
export class Snapshots {
  /** Snapshots a dump is reading (name key -> how many dumps): they may not be deleted. */
  private readonly pinned = new Map<string, number>()

  constructor (
    private readonly ctx: StoreContext,
    private readonly volumes: Volumes,
    private readonly files: Files,
    private readonly horizon: SnapshotHorizon
  ) {}

  /** Sets the horizon of every volume from the snapshots on disk (at open). */
  async loadHorizon (): Promise<void> {
    for await (const snap of this.ctx.sub.snapshots.values()) this.horizon.raise(snap.volume, snap.seq)
  }

  /**
   * Takes a snapshot: records the volume's current seq, nothing else (constant time, whatever
   * the volume's size). From then on commitFiles keeps each version the snapshot can see when
   * it is overwritten or deleted (copy-on-write), with its chunk references.
   */
  async createSnapshot (volName: string, name: string): Promise<SnapshotRecord> {
    this.ctx.assertOpen()
    return await this.ctx.mutex.run(async () => {
      const vol = await this.volumes.requireVolume(volName)
      const key = `${volName}${SEP}${name}`
      if (await this.ctx.sub.snapshots.get(key) !== undefined) throw new ConflictError(Codes.SNAPSHOT_EXISTS, `volume '${volName}' already has a snapshot '${name}'`)
      const snap: SnapshotRecord = { volume: volName, name, seq: vol.seq, createdAt: Date.now() }
      await this.ctx.write([{ type: 'put', key, value: snap, sublevel: this.ctx.sub.snapshots }])
      this.horizon.raise(volName, snap.seq)
      return snap
    })
  }

  async listSnapshots (volName: string): Promise<SnapshotRecord[]> {
    this.ctx.assertOpen()
    const out: SnapshotRecord[] = []
    for await (const v of this.ctx.sub.snapshots.values(volumeRange(volName))) out.push(v)
    return out.sort((a, b) => a.seq - b.seq || a.name.localeCompare(b.name))
  }

  async getSnapshot (volName: string, name: string): Promise<SnapshotRecord> {
    this.ctx.assertOpen()
    const snap = await this.ctx.sub.snapshots.get(`${volName}${SEP}${name}`)
    if (snap === undefined) throw new NotFoundError(Codes.SNAPSHOT_NOT_FOUND, `volume '${volName}' has no snapshot '${name}'`, { volume: volName, snapshot: name })
    return snap
  }

  /**
   * Keeps a snapshot from deletion until the returned function is called: a dump being taken
   * pins the snapshots it reads, so what they reference stays out of reach of GC until it ends.
   */
  async pinSnapshot (volName: string, name: string): Promise<() => void> {
    this.ctx.assertOpen()
    const key = `${volName}${SEP}${name}`
    // Under the mutex: a deletion is either over (not found here) or sees the pin.
    await this.ctx.mutex.run(async () => {
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

  /** Whether a dump is reading a snapshot of `volName`. */
  hasPins (volName: string): boolean {
    for (const key of this.pinned.keys()) if (key.startsWith(`${volName}${SEP}`)) return true
    return false
  }

  /** Deletes a snapshot and the kept versions no other snapshot needs (releasing their chunk references). */
  async deleteSnapshot (volName: string, name: string): Promise<{ versionsReleased: number }> {
    this.ctx.assertOpen()
    return await this.ctx.mutex.run(async () => {
      const { sub } = this.ctx
      await this.getSnapshot(volName, name)
      if (this.pinned.has(`${volName}${SEP}${name}`)) {
        throw new ConflictError(Codes.SNAPSHOT_IN_USE, `snapshot '${name}' of '${volName}' is being dumped: delete it when the dump has ended`, { volume: volName, snapshot: name })
      }
      const rest = (await this.listSnapshots(volName)).filter(s => s.name !== name)
      const ops: Op[] = [{ type: 'del', key: `${volName}${SEP}${name}`, sublevel: sub.snapshots }]
      const release = new Map<string, { key: Buffer, n: number }>()
      let released = 0
      for await (const [key, value] of sub.versions.iterator(volumeRange(volName))) {
        const { rec, supersededAt } = decode(value) as KeptVersion
        if (rest.some(s => rec.seq <= s.seq && s.seq < supersededAt)) continue
        ops.push({ type: 'del', key, sublevel: sub.versions })
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
      const counts = await sub.refs.getMany(entries.map(e => e.key))
      entries.forEach((e, i) => {
        const n = (counts[i] ?? 0) - e.n
        ops.push(n > 0 ? { type: 'put', key: e.key, value: n, sublevel: sub.refs } : { type: 'del', key: e.key, sublevel: sub.refs })
      })
      await this.ctx.write(ops)
      this.horizon.set(volName, rest.reduce((m, s) => Math.max(m, s.seq), -1))
      return { versionsReleased: released }
    })
  }

  /** The version of `path` a snapshot at `seq` shows (undefined: absent or deleted then). */
  async getFileAt (volName: string, path: string, seq: number): Promise<FileRecord | undefined> {
    this.ctx.assertOpen()
    const cur = await this.files.getFile(volName, path)
    if (cur !== undefined && cur.seq <= seq) return cur.deleted ? undefined : cur
    for await (const value of this.ctx.sub.versions.values({ gte: `${volName}${SEP}${path}${SEP}`, lt: `${volName}${SEP}${path}${SEP}\uffff`, reverse: true })) {
      const { rec, supersededAt } = decode(value) as KeptVersion
      if (rec.seq <= seq && seq < supersededAt) {
        const r = asFileRecord(rec)
        return r.deleted ? undefined : r
      }
    }
    return undefined
  }

  /** The files a snapshot at `seq` shows under `prefix`, in path order. */
  async * listFilesAt (volName: string, seq: number, prefix = '/'): AsyncGenerator<FileRecord> {
    for await (const cur of this.files.listFiles(volName, prefix)) {
      const rec = cur.seq <= seq ? (cur.deleted ? undefined : cur) : await this.getFileAt(volName, cur.path, seq)
      if (rec !== undefined) yield rec
    }
  }
}
