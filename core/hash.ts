import { createHash } from 'node:crypto'

/**
 * A chunk's bytes: one buffer, or the pieces they arrived in off the wire (views of the
 * decrypted transport buffers). Pieces go to a pack's positional writev as they are: a chunk
 * that came over the wire is never joined into a buffer of its own on its way to the disk.
 */
export type ChunkBytes = Uint8Array | readonly Uint8Array[]

/** Chunks are named by their SHA-256: every layer that moves chunks hashes and names them alike. */
export function sha256 (bytes: ChunkBytes): Uint8Array {
  const h = createHash('sha256')
  if (bytes instanceof Uint8Array) return h.update(bytes).digest()
  for (const piece of bytes) h.update(piece)
  return h.digest()
}

export function byteLengthOf (bytes: ChunkBytes): number {
  if (bytes instanceof Uint8Array) return bytes.byteLength
  let n = 0
  for (const piece of bytes) n += piece.byteLength
  return n
}

/** The pieces of `bytes` (one for a single buffer). */
export function piecesOf (bytes: ChunkBytes): readonly Uint8Array[] {
  return bytes instanceof Uint8Array ? [bytes] : bytes
}

/** `bytes` in one buffer: itself, or its pieces joined (a copy, for backends that store values). */
export function joined (bytes: ChunkBytes): Uint8Array {
  if (bytes instanceof Uint8Array) return bytes
  if (bytes.length === 1) return bytes[0]
  return Buffer.concat(bytes, byteLengthOf(bytes))
}

export function hashHex (hash: Uint8Array): string {
  return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('hex')
}
