import { ConflictError, Codes } from '../core/errors.js'
import { asFileRecord, decode } from '../core/codec.js'
import type { VolumeRecord } from '../core/records.js'
import type { Volumes } from './volumes.js'
import { volumeRange, type StoreContext, type SnapshotHorizon, type Op } from './store-context.js'

/** Chunk hashes are 32 bytes: a reference key is the hash, then the volume name. */
const HASH_BYTES = 32

/** What deleting a replica removed: live files and bytes, and the rest of its state. */
export interface ReplicaDeleted { files: number, bytes: number, snapshots: number, versions: number, prepared: number, refs: number }

/** What the deletion needs of the other concerns: their in-memory state of the volume goes with it. */
export interface ReplicaDeleteHooks {
  /** Snapshots of the volume a dump is reading (they may not vanish under it). */
  pinned: (vol: string) => boolean
  /** Forget cached answers about the volume (its size, its prepared chunks). */
  forget: (vol: string) => void
}

/**
 * Deletes everything this node keeps of one volume, in one synced batch under the commit
 * mutex: its record, file records, change log, snapshots and the versions kept for them,
 * prepared writes and the transaction log, watermarks and applied marks, and every chunk
 * reference it holds. The references are found by a scan of the whole reference index, not
 * from the records: a reference left behind (a kept version, a prepared write, a count that
 * drifted) would keep its chunk from GC forever, which is the leak this replaces. Chunk bytes
 * stay until garbage collection. `guard` sees the volume inside the mutex and may refuse.
 */
export async function deleteReplica (ctx: StoreContext, volumes: Volumes, horizon: SnapshotHorizon, hooks: ReplicaDeleteHooks,
  vol: string, guard?: (rec: VolumeRecord) => void): Promise<ReplicaDeleted> {
  ctx.assertOpen()
  return await ctx.mutex.run(async () => {
    const { sub } = ctx
    const rec = await volumes.requireVolume(vol)
    guard?.(rec)
    if (hooks.pinned(vol)) throw new ConflictError(Codes.SNAPSHOT_IN_USE, `a snapshot of '${vol}' is being dumped: delete the volume when the dump has ended`, { volume: vol })
    const ops: Op[] = [{ type: 'del', key: vol, sublevel: sub.volumes }]
    const out: ReplicaDeleted = { files: 0, bytes: 0, snapshots: 0, versions: 0, prepared: 0, refs: 0 }
    for await (const [key, value] of sub.files.iterator(volumeRange(vol))) {
      ops.push({ type: 'del', key, sublevel: sub.files })
      const f = asFileRecord(decode(value))
      if (f.deleted) continue
      out.files++
      out.bytes += f.size
    }
    const name = Buffer.from(vol, 'utf8')
    for await (const key of sub.refs.keys()) {
      const k = Buffer.from(key)
      if (k.length !== HASH_BYTES + name.length || !k.subarray(HASH_BYTES).equals(name)) continue
      ops.push({ type: 'del', key: k, sublevel: sub.refs })
      out.refs++
    }
    const range = volumeRange(vol)
    for await (const key of sub.changes.keys(range)) ops.push({ type: 'del', key, sublevel: sub.changes })
    for await (const key of sub.watermarks.keys(range)) ops.push({ type: 'del', key, sublevel: sub.watermarks })
    for await (const key of sub.applied.keys(range)) ops.push({ type: 'del', key, sublevel: sub.applied })
    for await (const key of sub.txlog.keys(range)) ops.push({ type: 'del', key, sublevel: sub.txlog })
    for await (const key of sub.snapshots.keys(range)) { ops.push({ type: 'del', key, sublevel: sub.snapshots }); out.snapshots++ }
    for await (const key of sub.versions.keys(range)) { ops.push({ type: 'del', key, sublevel: sub.versions }); out.versions++ }
    for await (const key of sub.prepared.keys(range)) { ops.push({ type: 'del', key, sublevel: sub.prepared }); out.prepared++ }
    await ctx.write(ops)
    // A volume created again under this name starts with no snapshot: nothing to keep versions for.
    horizon.set(vol, -1)
    hooks.forget(vol)
    return out
  })
}
