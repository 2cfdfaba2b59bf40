/** The repack's two scans: which packs are sealed, and how many live bytes each still holds. */
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { ChunkSublevel } from './chunk-store.js'
import { decodeLoc, packId } from './pack-locations.js'

/** Pack files of `dir` no append can reach any more (older than the active one, none in flight), with their sizes. */
export async function sealedPacks (dir: string, activeId: number, inflight: ReadonlyMap<number, number>): Promise<Map<number, number>> {
  const out = new Map<number, number>()
  for (const file of await readdir(dir)) {
    const id = packId(file)
    if (id === undefined || id >= activeId || inflight.has(id)) continue
    const st = await stat(join(dir, file)).catch(() => undefined)
    if (st !== undefined) out.set(id, st.size)
  }
  return out
}

/** Live bytes per pack of `packs`: one streaming scan of the locations. */
export async function liveBytes (loc: ChunkSublevel, packs: Map<number, number>, signal?: AbortSignal): Promise<Map<number, number>> {
  const live = new Map<number, number>()
  let n = 0
  for await (const value of loc.values()) {
    if (++n % 4096 === 0) signal?.throwIfAborted()
    const l = decodeLoc(value)
    if (packs.has(l.pack)) live.set(l.pack, (live.get(l.pack) ?? 0) + l.length)
  }
  return live
}
