/**
 * A simulated power loss of a stopped node: every pack file is cut to the length it had when
 * its last datasync began (recorded by the pack store of a testing node, store/pack-synced.ts),
 * as a power cut would lose what was written after it. A SIGKILL alone keeps the page cache, so
 * without this cut a missing fsync would never show.
 *
 * Not simulated: level's own files (its write-ahead log and tables keep whatever reached the
 * page cache, synced or not), directory entries created without a directory fsync, and torn
 * sectors inside the synced length.
 */
import { readdir, stat, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { readSyncedLengths } from '../store/pack-synced.js'
import { packId } from '../store/pack-locations.js'

export interface PowerCut { packs: number, cut: number, bytesCut: number }

/** Cuts the packs of the (stopped) node at `dataDir` to their fsynced lengths. */
export async function cutToSynced (dataDir: string): Promise<PowerCut> {
  const dir = join(dataDir, 'chunks')
  const synced = await readSyncedLengths(dir)
  const out: PowerCut = { packs: 0, cut: 0, bytesCut: 0 }
  for (const file of await readdir(dir).catch(() => [] as string[])) {
    if (packId(file) === undefined) continue
    out.packs++
    const size = (await stat(join(dir, file))).size
    const keep = Math.min(size, synced.get(file) ?? 0)
    if (keep < size) {
      await truncate(join(dir, file), keep)
      out.cut++
      out.bytesCut += size - keep
    }
  }
  return out
}
