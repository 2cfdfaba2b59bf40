/**
 * Small puts that arrive together are written together: each HTTP PUT of a small body waits
 * in its volume's queue while the batches ahead are written, then goes with the others that
 * waited into one putBufferedFiles (one has-check, one pack write, one commit). Like group
 * commit one level up: a put is answered once the batch that holds it is durable, never
 * before; at 16 KiB a put's own has-check, pack write and commit slot cost more than its bytes.
 *
 *   state of a put   what holds it
 *   waiting          `queues` (its volume's), until a batch slot is free
 *   writing          a batch being written
 *   answered         the batch durable (its record) or failed (every put of the batch rejected)
 */
import type { FileRecord } from '../core/records.js'
import { MAX_BATCH_BYTES, MAX_BATCH_FILES, type BufferedFile } from './put-files.js'

/**
 * Batches being written at once: one, so that the puts arriving meanwhile make the next one
 * big (two measured no faster, with smaller batches).
 */
const BATCHES_IN_FLIGHT = 1
/** A batch's share of put-files' limits: small enough that a put never waits long behind one. */
const BATCH_FILES = Math.min(256, MAX_BATCH_FILES)
const BATCH_BYTES = Math.min(4 * 1024 * 1024, MAX_BATCH_BYTES)

/** Bytes of small puts held in memory at once (read, queued or being written); past it, puts stream. */
const HELD_BYTES = 32 * 1024 * 1024

interface Waiting {
  file: BufferedFile
  bytes: number
  resolve: (rec: FileRecord) => void
  reject: (err: unknown) => void
}

/** Writes a batch of one volume: the records in the files' order, or throws for all of them. */
export type BatchWriter = (volume: string, files: BufferedFile[]) => Promise<FileRecord[]>

export class PutBatcher {
  private readonly queues = new Map<string, Waiting[]>()
  private writing = 0
  /** Puts answered, and the batches they went in (a put alone is a batch of one). */
  readonly counters = { puts: 0, batches: 0 }

  /** Bytes admitted (admit) and not yet released. */
  private held = 0

  constructor (private readonly write: BatchWriter, private readonly heldLimit = HELD_BYTES) {}

  /**
   * Whether a small put of `bytes` may be held in memory now: the sum over every put being
   * read, queued or written stays under the limit (HELD_BYTES), however many clients send at
   * once. A put admitted is released (release) once answered; one refused takes the streamed path.
   */
  admit (bytes: number): boolean {
    if (this.held + bytes > this.heldLimit) return false
    this.held += bytes
    return true
  }

  release (bytes: number): void { this.held -= bytes }

  get heldBytes (): number { return this.held }

  /** Queues a put of `file` (validated by the caller) to `volume`; resolves when it is durable. */
  async put (volume: string, file: BufferedFile): Promise<FileRecord> {
    return await new Promise<FileRecord>((resolve, reject) => {
      const q = this.queues.get(volume) ?? []
      this.queues.set(volume, q)
      q.push({ file, bytes: file.parts.reduce((n, p) => n + p.byteLength, 0), resolve, reject })
      this.pump()
    })
  }

  /** Starts batches while slots are free, the volumes taking turns (Map order, re-queued at the end). */
  private pump (): void {
    while (this.writing < BATCHES_IN_FLIGHT && this.queues.size > 0) {
      const [volume, q] = this.queues.entries().next().value as [string, Waiting[]]
      this.queues.delete(volume)
      let n = 0
      let bytes = 0
      // A path once per batch: a batch keeps only the last record of a path, and each
      // acknowledged put must have its own (its own seq and vector), so a second put of the
      // path waits for the next batch.
      const paths = new Set<string>()
      while (n < q.length && n < BATCH_FILES && (n === 0 || bytes + q[n].bytes <= BATCH_BYTES) && !paths.has(q[n].file.path)) {
        paths.add(q[n].file.path)
        bytes += q[n++].bytes
      }
      const batch = q.splice(0, n)
      if (q.length > 0) this.queues.set(volume, q)
      this.writing++
      void this.run(volume, batch).finally(() => {
        this.writing--
        this.pump()
      })
    }
  }

  /** Settles every put of the batch; never throws. */
  private async run (volume: string, batch: Waiting[]): Promise<void> {
    try {
      const recs = await this.write(volume, batch.map(w => w.file))
      this.counters.batches++
      this.counters.puts += batch.length
      batch.forEach((w, i) => { w.resolve(recs[i]) })
    } catch (err) {
      for (const w of batch) w.reject(err)
    }
  }
}
