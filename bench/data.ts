/**
 * Test data as streams, never a whole file in memory.
 *
 * - prng*: AES-128-CTR keystream keyed by a seed. Seeded, seekable (any byte offset can be
 *   produced without the ones before it) and ~1 GB/s on one core here. Every byte is random,
 *   so no two chunks of any size or alignment are equal: used where chunk boundaries matter.
 * - counted*: one random 1 MiB block repeated, with an 8-byte (stream id, 4 KiB index) counter
 *   overwritten at every 4 KiB. Every 4 KiB-aligned piece is unique, so fixed-size chunks of
 *   4 KiB or more never dedupe. About 4x cheaper than the PRNG: used where the data source
 *   must cost as little as possible next to what is measured (I/O benchmarks).
 */
import { createCipheriv, createHash } from 'node:crypto'
import { MiB } from './lib.js'

const ZEROS = Buffer.alloc(MiB)

function keyFor (seed: number): Buffer {
  return createHash('sha256').update(`replicant-bench-${seed}`).digest().subarray(0, 16)
}

/** Bytes [pos, pos + length) of the keystream of `seed`, in pieces of at most `piece` bytes. */
export function * prngStream (seed: number, pos: number, length: number, piece = MiB): Generator<Buffer> {
  if (length <= 0) return
  const aligned = pos - (pos % 16)
  const iv = Buffer.alloc(16)
  iv.writeBigUInt64BE(BigInt(aligned / 16), 8)
  const cipher = createCipheriv('aes-128-ctr', keyFor(seed), iv)
  let skip = pos - aligned
  let left = length
  while (left > 0) {
    const want = Math.min(piece, left)
    let out = cipher.update(ZEROS.subarray(0, Math.min(ZEROS.length, want + skip)))
    if (skip > 0) { out = out.subarray(skip); skip = 0 }
    yield out
    left -= out.length
  }
}

/** One buffer of `length` PRNG bytes (for small pieces only). */
export function prngBytes (seed: number, pos: number, length: number): Buffer {
  const parts = [...prngStream(seed, pos, length)]
  return parts.length === 1 ? parts[0] : Buffer.concat(parts)
}

let base: Buffer | undefined

/**
 * `length` bytes of counted data for stream `id`, in fresh 1 MiB buffers (the consumer may keep
 * them). Deterministic: the same (id, length) always gives the same bytes.
 */
export function * countedStream (id: number, length: number): Generator<Buffer> {
  base ??= prngBytes(0xba5e, 0, MiB)
  for (let off = 0; off < length; off += MiB) {
    const n = Math.min(MiB, length - off)
    const buf = Buffer.allocUnsafe(n)
    base.copy(buf, 0, 0, n)
    for (let k = 0; k + 8 <= n; k += 4096) {
      buf.writeUInt32LE(id >>> 0, k)
      buf.writeUInt32LE(((off + k) / 4096) >>> 0, k + 4)
    }
    yield buf
  }
}

/** One buffer of counted data (small files). */
export function countedBytes (id: number, length: number): Buffer {
  const parts = [...countedStream(id, length)]
  return parts.length === 1 ? parts[0] : Buffer.concat(parts)
}

export function sha256Hex (pieces: Iterable<Uint8Array>): string {
  const h = createHash('sha256')
  for (const p of pieces) h.update(p)
  return h.digest('hex')
}
