import type { FileHandle } from 'node:fs/promises'

/** Where a chunk lies: pack file id, byte offset and length. Stored as 16 bytes in the location sublevel. */
export interface Loc { pack: number, offset: number, length: number }

/** Largest single read of adjacent chunks (see coalesce). */
const MAX_COALESCED_READ = 4 * 1024 * 1024

export const packName = (id: number): string => `pack-${String(id).padStart(8, '0')}.dat`

export const packId = (file: string): number | undefined => {
  const m = /^pack-(\d+)\.dat$/.exec(file)
  return m === null ? undefined : Number(m[1])
}

export function encodeLoc (pack: number, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(16)
  b.writeUInt32BE(pack, 0)
  b.writeUIntBE(offset, 4, 6)
  b.writeUInt16BE(0, 10)
  b.writeUInt32BE(length, 12)
  return b
}

export function decodeLoc (b: Uint8Array): Loc {
  const v = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
  return { pack: v.readUInt32BE(0), offset: v.readUIntBE(4, 6), length: v.readUInt32BE(12) }
}

/**
 * Indexes of `locs` grouped into runs that lie back to back in one pack, each at most
 * MAX_COALESCED_READ bytes: one read per run instead of one per chunk.
 */
export function coalesce (locs: Array<Loc | undefined>): number[][] {
  const order = locs.map((_, i) => i).filter(i => locs[i] !== undefined)
    .sort((x, y) => locs[x]!.pack - locs[y]!.pack || locs[x]!.offset - locs[y]!.offset)
  const runs: number[][] = []
  for (const i of order) {
    const run = runs[runs.length - 1]
    const prev = run?.[run.length - 1]
    const l = locs[i]!
    if (run !== undefined && prev !== undefined && locs[prev]!.pack === l.pack && locs[prev]!.offset + locs[prev]!.length === l.offset &&
        l.offset + l.length - locs[run[0]]!.offset <= MAX_COALESCED_READ) run.push(i)
    else runs.push([i])
  }
  return runs
}

/** A read that failed because its pack was repacked away (file unlinked, or its handle closed). */
export const packGone = (err: unknown): boolean => {
  const code = (err as { code?: unknown }).code
  return code === 'ENOENT' || code === 'EBADF'
}

/** One positional writev of every chunk: no concatenated copy of the batch. */
export async function writeAt (fh: FileHandle, chunks: Uint8Array[], start: number, total: number): Promise<void> {
  const { bytesWritten } = await fh.writev(chunks, start)
  if (bytesWritten >= total) return
  // A short write (rare): the rest, from where it stopped.
  const body = Buffer.concat(chunks, total)
  let done = bytesWritten
  while (done < total) {
    const r = await fh.write(body, done, total - done, start + done)
    done += r.bytesWritten
  }
}
