import { createHash } from 'node:crypto'

/** Chunks are named by their SHA-256: every layer that moves chunks hashes and names them alike. */
export function sha256 (bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest()
}

export function hashHex (hash: Uint8Array): string {
  return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('hex')
}
