import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { packId } from '../store/pack-locations.js'

/** Bytes of the files in `dir` that `keep` accepts (a file gone meanwhile counts 0). */
async function bytesOf (dir: string, keep: (name: string) => boolean): Promise<number> {
  let n = 0
  for (const f of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (f.isFile() && keep(f.name)) n += (await stat(join(dir, f.name)).catch(() => ({ size: 0 }))).size
  }
  return n
}

/**
 * Bytes of chunk pack files (unlinked packs no longer count; side files such as a testing
 * node's synced-lengths record are not packs) and of the index database on disk.
 */
export async function diskUsage (dataDir: string): Promise<{ packBytes: number, indexBytes: number }> {
  return {
    packBytes: await bytesOf(join(dataDir, 'chunks'), name => packId(name) !== undefined),
    indexBytes: await bytesOf(join(dataDir, 'store'), () => true)
  }
}
