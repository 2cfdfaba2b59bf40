/**
 * Fixed-size chunking: every chunk but the last holds exactly `size` bytes, so the chunk that
 * holds byte offset o is floor(o / size) (Range reads need no search) and an in-place rewrite
 * dirties only the chunks it touches. The figures behind the choice are in docs/CHUNKING.md.
 */
export const DEFAULT_CHUNK_SIZE = 64 * 1024
export const MIN_CHUNK_SIZE = 4 * 1024
export const MAX_CHUNK_SIZE = 1024 * 1024

export function isValidChunkSize (n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0
}

/** Re-frames any byte stream into chunks of `size` bytes (the last may be short); memory stays at one chunk. */
export async function * fixedChunks (source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let buf = new Uint8Array(size)
  let fill = 0
  for await (const piece of source) {
    let offset = 0
    while (offset < piece.byteLength) {
      if (fill === 0 && piece.byteLength - offset >= size) {
        // Whole chunk available in the input: hand out a copy without staging it.
        yield piece.slice(offset, offset + size)
        offset += size
        continue
      }
      const n = Math.min(size - fill, piece.byteLength - offset)
      buf.set(piece.subarray(offset, offset + n), fill)
      fill += n
      offset += n
      if (fill === size) {
        yield buf
        buf = new Uint8Array(size)
        fill = 0
      }
    }
  }
  if (fill > 0) yield buf.subarray(0, fill)
}
