import { sha256, hashHex } from '../store/chunk-store.js'
import { chunkHashes } from '../core/records.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'

const log = logger('sync')

/** Chunks read and checked per batch. */
const BATCH = 64

/** Dropped chunks remembered to name the files they damage; past this, only the count goes on. */
const DROPPED_KEPT = 100_000

/**
 * Reads every chunk of every live record of `volume` and checks it against its hash; a
 * missing or corrupt one is dropped so the background copy fetches it again (a merge).
 * `damagedFiles` counts the live files that reference a dropped chunk (found by a second pass
 * over the index, run only when something was dropped): an operator thinks in files, and a
 * chunk shared by many files damages each of them.
 */
export async function verifyChunks (store: Store, volume: string, signal: AbortSignal): Promise<{ checked: number, dropped: number, damagedFiles: number }> {
  let bad = 0
  const droppedKeys = new Set<string>()
  let batch: Uint8Array[] = []
  const check = async (): Promise<void> => {
    const bytes = await store.chunks.getMany(batch)
    const drop = batch.filter((h, i) => bytes[i] === undefined || Buffer.compare(sha256(bytes[i]), h) !== 0)
    if (drop.length > 0) {
      log.error('merge of %s: %d chunk(s) missing or corrupt, to fetch again: %s', volume, drop.length, drop.slice(0, 4).map(hashHex).join(', '))
      await store.chunks.delete(drop)
      bad += drop.length
      for (const h of drop) if (droppedKeys.size < DROPPED_KEPT) droppedKeys.add(hashHex(h))
    }
    batch = []
  }
  const seen = new Set<string>()
  for await (const rec of store.listFiles(volume, '/', { signal })) {
    if (rec.deleted) continue
    for (const h of chunkHashes(rec)) {
      const k = hashHex(h)
      if (seen.has(k)) continue
      seen.add(k)
      batch.push(h)
      if (batch.length >= BATCH) await check()
    }
  }
  if (batch.length > 0) await check()
  return { checked: seen.size, dropped: bad, damagedFiles: bad === 0 ? 0 : await filesReferencing(store, volume, droppedKeys, signal) }
}

async function filesReferencing (store: Store, volume: string, keys: Set<string>, signal: AbortSignal): Promise<number> {
  let n = 0
  for await (const rec of store.listFiles(volume, '/', { signal })) {
    if (rec.deleted) continue
    for (const h of chunkHashes(rec)) {
      if (keys.has(hashHex(h))) { n++; break }
    }
  }
  return n
}
