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

/**
 * Chunk-sized buffers to reuse: a put hands its chunks back once they are written, so the next
 * chunks are copied into memory already paged in rather than into fresh allocations (at disk
 * speed those were most of the garbage collector's work). At most `max` are kept.
 */
export class ChunkBuffers {
  private readonly free: Uint8Array[] = []
  constructor (readonly size: number, private readonly max: number) {}

  take (): Uint8Array { return this.free.pop() ?? new Uint8Array(Buffer.allocUnsafeSlow(this.size).buffer, 0, this.size) }

  /** Only for a chunk this pool handed out (or a prefix view of one) that nothing holds any more. */
  give (chunk: Uint8Array): void {
    if (chunk.byteOffset !== 0 || chunk.buffer.byteLength !== this.size || this.free.length >= this.max) return
    this.free.push(new Uint8Array(chunk.buffer, 0, this.size))
  }
}

/**
 * Re-frames any byte stream into chunks of `size` bytes (the last may be short); memory stays
 * at one chunk. Every chunk is a copy (a source may reuse the buffer it yielded), into a buffer
 * of `buffers` when given.
 */
export async function * fixedChunks (source: AsyncIterable<Uint8Array>, size: number, buffers?: ChunkBuffers): AsyncGenerator<Uint8Array> {
  const alloc = buffers !== undefined && buffers.size === size ? () => buffers.take() : () => new Uint8Array(size)
  let buf: Uint8Array | undefined
  let fill = 0
  for await (const piece of source) {
    let offset = 0
    while (offset < piece.byteLength) {
      buf ??= alloc()
      const n = Math.min(size - fill, piece.byteLength - offset)
      buf.set(piece.subarray(offset, offset + n), fill)
      fill += n
      offset += n
      if (fill === size) {
        yield buf
        buf = undefined
        fill = 0
      }
    }
  }
  if (buf !== undefined && fill > 0) yield buf.subarray(0, fill)
}

/**
 * Views that lie back to back in one buffer (chunks of one coalesced pack read) as one view:
 * a 2 MiB batch goes to the socket in one write instead of 32.
 */
export function * joinAdjacent (views: Uint8Array[]): Generator<Uint8Array> {
  let run: Uint8Array | undefined
  for (const v of views) {
    if (run !== undefined && run.buffer === v.buffer && run.byteOffset + run.byteLength === v.byteOffset) {
      run = new Uint8Array(run.buffer, run.byteOffset, run.byteLength + v.byteLength)
      continue
    }
    if (run !== undefined && run.byteLength > 0) yield run
    run = v
  }
  if (run !== undefined && run.byteLength > 0) yield run
}
