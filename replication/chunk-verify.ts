import { sha256, hashHex } from '../store/chunk-store.js'
import { chunkHashes } from '../core/records.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'

const log = logger('sync')

/** Chunks read and checked per batch. */
const BATCH = 64

/**
 * Reads every chunk of every live record of `volume` and checks it against its hash; a
 * missing or corrupt one is dropped so the background copy fetches it again (a merge).
 */
export async function verifyChunks (store: Store, volume: string, signal: AbortSignal): Promise<{ checked: number, dropped: number }> {
  let bad = 0
  let batch: Uint8Array[] = []
  const check = async (): Promise<void> => {
    const bytes = await store.chunks.getMany(batch)
    const drop = batch.filter((h, i) => bytes[i] === undefined || Buffer.compare(sha256(bytes[i]), h) !== 0)
    if (drop.length > 0) {
      log.error('merge of %s: %d chunk(s) missing or corrupt, to fetch again: %s', volume, drop.length, drop.slice(0, 4).map(hashHex).join(', '))
      await store.chunks.delete(drop)
      bad += drop.length
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
  return { checked: seen.size, dropped: bad }
}
