/**
 * Chunkers for the chunking benchmark only (the product chunker is node/chunker.ts).
 *
 * A Cutter finds chunk ends in a byte stream fed block by block; ChunkSink drives a cutter over
 * blocks and hashes each chunk with sha256 without copying (pieces of a chunk that spans blocks
 * go to the same incremental hash). Fixed-size and content-defined chunking run through the
 * same sink, so their throughput differs only by the cutter.
 *
 * The content-defined cutter is FastCDC (Xia et al., USENIX ATC 2016) in compact form: a gear
 * rolling hash h = (h << 1) + GEAR[byte] over 32-bit integers, cut-point skipping (no hashing
 * of the first `min` bytes of a chunk), and normalised chunking (a harder mask before the target
 * size, an easier one after it) so sizes cluster around the target. The mask takes the top bits
 * of h, which depend on the last 32 bytes (the gear window); the low bits depend on fewer.
 */
import { createHash, type Hash } from 'node:crypto'
import { prngBytes } from './data.js'

export interface Cutter {
  readonly name: string
  /**
   * Scans `buf` from `start` for the end of the current chunk. Returns the index just past the
   * chunk's last byte (and starts a new chunk), or -1 if the chunk continues past `buf`.
   */
  next: (buf: Uint8Array, start: number) => number
  reset: () => void
}

export class FixedCutter implements Cutter {
  private len = 0
  constructor (readonly size: number) {}
  get name (): string { return 'fixed' }

  next (buf: Uint8Array, start: number): number {
    const need = this.size - this.len
    if (buf.length - start >= need) { this.len = 0; return start + need }
    this.len += buf.length - start
    return -1
  }

  reset (): void { this.len = 0 }
}

let gear: Int32Array | undefined

/** 256 random 32-bit gear values from a fixed seed, so chunk boundaries are repeatable. */
function gearTable (): Int32Array {
  if (gear === undefined) {
    const b = prngBytes(0x6ea7, 0, 1024)
    gear = new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + 1024))
  }
  return gear
}

/** A mask of the top `bits` bits of a 32-bit int. */
const topBits = (bits: number): number => (bits >= 32 ? -1 : ~((1 << (32 - bits)) - 1)) | 0

export interface CdcParams {
  min: number
  /** The target (mean) chunk size; sets the mask bits. */
  avg: number
  max: number
  /** Where the harder mask gives way to the easier one (default avg). */
  normal?: number
  /** Normalisation level, FastCDC's "NC": mask bits are log2(avg) + nc before `normal`, - nc after. */
  nc?: number
}

export class GearCutter implements Cutter {
  readonly min: number
  readonly avg: number
  readonly max: number
  readonly normal: number
  private readonly maskS: number
  private readonly maskL: number
  private readonly g = gearTable()
  private len = 0
  private h = 0

  constructor (p: CdcParams) {
    this.min = p.min
    this.avg = p.avg
    this.max = p.max
    this.normal = p.normal ?? p.avg
    const bits = Math.round(Math.log2(p.avg))
    const nc = p.nc ?? 1
    this.maskS = topBits(bits + nc)
    this.maskL = topBits(bits - nc)
  }

  get name (): string { return 'cdc' }

  next (buf: Uint8Array, start: number): number {
    const g = this.g
    const n = buf.length
    const base = this.len - start // the chunk holds base + i bytes before buf[i]
    let i = start
    let h = this.h
    // Cut-point skipping: no cut before `min`, so those bytes are not even hashed.
    if (base + i < this.min) {
      i = Math.min(n, this.min - base)
      if (base + i < this.min) { this.len = base + i; return -1 }
    }
    // Up to the normal size: the harder mask.
    if (base + i < this.normal) {
      const stop = Math.min(n, this.normal - base)
      const m = this.maskS
      while (i < stop) {
        h = ((h << 1) + g[buf[i]]) | 0
        i++
        if ((h & m) === 0) return this.cut(i)
      }
    }
    // From the normal size to the maximum: the easier mask; a forced cut at the maximum.
    if (base + i >= this.normal) {
      const stop = Math.min(n, this.max - base)
      const m = this.maskL
      while (i < stop) {
        h = ((h << 1) + g[buf[i]]) | 0
        i++
        if ((h & m) === 0) return this.cut(i)
      }
      if (base + i >= this.max) return this.cut(i)
    }
    this.len = base + i
    this.h = h
    return -1
  }

  private cut (i: number): number {
    this.len = 0
    this.h = 0
    return i
  }

  reset (): void { this.len = 0; this.h = 0 }
}

export type Method = 'fixed' | 'cdc'

/**
 * The cutter for `method` at a target chunk size. CDC: min target/4, max 4 x target, NC 2,
 * normal point 13/16 of the target: calibrated on random data so the mean chunk is the target
 * (with normal = target the mean is 1.14 x target, because no cut falls below min).
 */
export function makeCutter (method: Method, target: number): Cutter {
  return method === 'fixed'
    ? new FixedCutter(target)
    : new GearCutter({ min: target / 4, avg: target, max: target * 4, nc: 2, normal: target * 13 / 16 })
}

/** Feeds blocks through a cutter; calls `onChunk(hash, length)` per chunk (hash undefined when not hashing). */
export class ChunkSink {
  private hash: Hash | undefined
  private len = 0
  chunks = 0
  bytes = 0

  constructor (private readonly cutter: Cutter, private readonly onChunk: (hash: Buffer | undefined, length: number) => void, private readonly hashing = true) {
    if (hashing) this.hash = createHash('sha256')
  }

  push (buf: Uint8Array): void {
    let off = 0
    while (off < buf.length) {
      const cut = this.cutter.next(buf, off)
      const end = cut < 0 ? buf.length : cut
      if (this.hashing) this.hash!.update(buf.subarray(off, end))
      this.len += end - off
      off = end
      if (cut >= 0) this.emit()
    }
  }

  end (): void {
    if (this.len > 0) this.emit()
    this.cutter.reset()
  }

  private emit (): void {
    let digest: Buffer | undefined
    if (this.hashing) { digest = this.hash!.digest(); this.hash = createHash('sha256') }
    this.chunks++
    this.bytes += this.len
    const len = this.len
    this.len = 0
    this.onChunk(digest, len)
  }
}
