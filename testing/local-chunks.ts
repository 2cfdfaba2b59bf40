// The chaos runner's last check, on a stopped node's own store (not through its API).
import { Store } from '../store/store.js'
import { sha256, hashHex } from '../store/chunk-store.js'
import { chunkHashes } from '../core/records.js'
import type { Violation } from './history.js'

/**
 * Opens a stopped node's store and checks that it holds, locally, every chunk of every live
 * file of `volume`, with the right hash: a steady member holds its data, it does not merely
 * know where to fetch it (reads through the API would fetch a missing chunk from a peer).
 */
export async function checkLocalChunks (node: string, dataDir: string, volume: string): Promise<Violation[]> {
  const store = await Store.open(dataDir)
  const out: Violation[] = []
  try {
    for await (const rec of store.listFiles(volume)) {
      if (rec.deleted) continue
      const hashes = [...chunkHashes(rec)]
      const bytes = await store.chunks.getMany(hashes)
      const bad = hashes.filter((h, i) => bytes[i] === undefined || Buffer.compare(sha256(bytes[i]), h) !== 0)
      if (bad.length > 0) {
        out.push({ kind: 'MISSING_CHUNK', path: rec.path, message: `${node} lists ${rec.path} but lacks ${bad.length} of its ${hashes.length} chunks locally (first ${hashHex(bad[0]).slice(0, 12)})` })
      }
    }
  } finally {
    await store.close()
  }
  return out
}
