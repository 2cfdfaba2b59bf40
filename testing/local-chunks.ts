// The chaos runner's last check, on a stopped node's own store (not through its API).
import { Store } from '../store/store.js'
import { sha256, hashHex } from '../store/chunk-store.js'
import { chunkHashes } from '../core/records.js'
import { compare } from '../core/version-vector.js'
import type { Op, Violation } from './history.js'

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

/**
 * After a power loss (the node stopped, its packs cut to what was fsynced): every put this node
 * acknowledged whose record it still holds at that version must still have all its bytes in
 * its own store. An acknowledgement promises durability on that node, not on its peers, so a
 * chunk refetched from a peer later would hide a broken fsync order; this looks before that.
 */
export async function checkAckedBytes (node: string, dataDir: string, volume: string, acked: Op[]): Promise<Violation[]> {
  const store = await Store.open(dataDir)
  const out: Violation[] = []
  try {
    if (await store.getVolume(volume) === undefined) return out
    for (const op of acked) {
      if (op.kind !== 'put' || op.version === undefined) continue
      const rec = await store.getFile(volume, op.path)
      if (rec === undefined || rec.deleted || compare(rec.vv, op.version) !== 'equal') continue
      const hashes = [...chunkHashes(rec)]
      const bytes = await store.chunks.getMany(hashes)
      const bad = hashes.filter((h, i) => bytes[i] === undefined || Buffer.compare(sha256(bytes[i]), h) !== 0).length
      if (bad > 0) out.push({ kind: 'LOST', path: op.path, op: op.id, message: `power loss of ${node}: it acknowledged put #${op.id} of ${op.path} but lost ${bad} of its ${hashes.length} chunks (written, acknowledged, never fsynced)` })
    }
  } finally {
    await store.close()
  }
  return out
}
