/**
 * Tar streams in and out of a volume (tar-stream: a maintained streaming parser and generator;
 * docs/ARCHITECTURE.md "Archives"). Import writes each regular file of the archive under a
 * prefix, small ones several at a time (so that their commits share groups), big ones streamed;
 * export writes the live files under a prefix as one archive, one file at a time.
 */
import { extract, pack, type Header } from 'tar-stream'
import { ReplicantError, InvalidInputError, Codes } from '../core/errors.js'
import { normalizePath } from '../core/paths.js'
import type { FileRecord } from '../core/records.js'
import type { PutOptions, ReadRange } from '../replication/volume-service.js'

/** Files up to this size are read whole from the archive and written in batches. */
const BUFFERED_FILE_BYTES = 1024 * 1024
/** Buffered files written as one batch (VolumeService.putFiles: one chunk write, one commit). */
const BATCH_FILES = 256
const BATCH_BYTES = 4 * 1024 * 1024
/** Bytes of buffered files being written at once (the batch being filled comes on top). */
const BUFFER_BUDGET_BYTES = 8 * 1024 * 1024
/** Writes (batches, or one streamed file) in flight at once: one hashes while another commits. */
const PARALLEL_WRITES = 2

export interface ImportResult { files: number, bytes: number, directories: number }

export interface ArchiveVolumes {
  putFiles: (vol: string, files: Array<{ path: string, parts: Uint8Array[] } & PutOptions>, signal?: AbortSignal) => Promise<FileRecord[]>
  putFile: (vol: string, path: string, source: AsyncIterable<Uint8Array>, opts?: PutOptions) => Promise<FileRecord>
  listFiles: (vol: string, prefix?: string, signal?: AbortSignal) => AsyncGenerator<FileRecord>
  readFile: (vol: string, rec: FileRecord, range?: ReadRange, signal?: AbortSignal) => AsyncGenerator<Uint8Array>
}

/**
 * The volume path of an archive entry under `prefix`, validated like any path. A leading `./`
 * (from `tar c -C DIR .`) is dropped; an absolute name is refused rather than silently made
 * relative; `..` and the rest are refused by normalizePath. Undefined: the archive's root.
 */
export function entryPath (prefix: string, name: string): string | undefined {
  if (name.startsWith('/')) throw new InvalidInputError(Codes.BAD_PATH, `archive entry '${name}' is an absolute path`, { entry: name })
  let rel = name
  while (rel.startsWith('./')) rel = rel.slice(2)
  if (rel.endsWith('/')) rel = rel.slice(0, -1)
  if (rel === '' || rel === '.') return undefined
  const base = prefix.endsWith('/') ? prefix : prefix + '/'
  try {
    return normalizePath(base + rel)
  } catch (err) {
    if (err instanceof InvalidInputError) throw new InvalidInputError(Codes.BAD_PATH, `archive entry '${name}': ${err.message}`, { entry: name })
    throw err
  }
}

/** Resolves when `w` can take more ('drain'), or has closed (then the caller finds out why). */
async function writable (w: NodeJS.EventEmitter): Promise<void> {
  await new Promise<void>(resolve => {
    const done = (): void => { w.off('drain', done); w.off('close', done); resolve() }
    w.on('drain', done)
    w.on('close', done)
  })
}

/**
 * An entry's mtime in ms: the pax `mtime` (seconds with a fraction, as GNU tar --format=posix
 * and `replicant put` write it) when there is one, else the ustar header's whole seconds.
 */
function entryMtime (h: Header): number {
  const pax = h.pax as Record<string, string> | null | undefined
  const precise = pax?.mtime !== undefined ? Number(pax.mtime) * 1000 : NaN
  return Math.max(0, Math.floor(Number.isFinite(precise) ? precise : h.mtime.getTime()))
}

/**
 * Writes every regular file of the tar stream `body` under `prefix`. Directories are skipped
 * (a volume's directories are implied by its paths); links, devices and fifos are refused
 * (UNSUPPORTED_ENTRY) and a bad name fails the import (BAD_PATH): the files before the bad
 * entry stay written, each durable as it was answered, and nothing after it is. Small files
 * go in batches, several batches at once; a failed write fails its whole batch.
 */
export async function importTar (volumes: ArchiveVolumes, vol: string, prefix: string, body: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<ImportResult> {
  const result: ImportResult = { files: 0, bytes: 0, directories: 0 }
  const ex = extract()
  // The request body into the parser, with backpressure; a failure on either side ends both.
  const feeding = (async () => {
    try {
      for await (const part of body) {
        if (ex.destroyed) return
        if (!ex.write(part)) await writable(ex)
      }
      ex.end(undefined)
    } catch (err) {
      ex.destroy(err as Error)
    }
  })()
  const inflight = new Set<Promise<void>>()
  let buffered = 0
  let failure: unknown // of a write: nothing more is started
  let stop: unknown // of the archive itself: what came before it is still written
  const slot = async (bytes: number): Promise<void> => {
    while (inflight.size >= PARALLEL_WRITES || (buffered + bytes > BUFFER_BUDGET_BYTES && inflight.size > 0)) await Promise.race(inflight)
  }
  const start = (put: Promise<FileRecord[]>, bytes: number): void => {
    buffered += bytes
    const p: Promise<void> = put.then(recs => { for (const rec of recs) { result.files++; result.bytes += rec.size } }, err => { failure ??= err })
      .finally(() => { buffered -= bytes; inflight.delete(p) })
    inflight.add(p)
  }
  let batch: Array<{ path: string, parts: Uint8Array[] } & PutOptions> = []
  let batchBytes = 0
  const flush = async (): Promise<void> => {
    if (batch.length === 0 || failure !== undefined) return
    const files = batch
    const bytes = batchBytes
    batch = []
    batchBytes = 0
    await slot(bytes)
    start(volumes.putFiles(vol, files, signal), bytes)
  }
  try {
    for await (const entry of ex) {
      const h: Header = entry.header
      if (failure !== undefined) break
      signal.throwIfAborted()
      if (h.type === 'directory') {
        entryPath(prefix, h.name)
        result.directories++
        entry.resume()
        continue
      }
      if (h.type !== 'file' && h.type !== 'contiguous-file') {
        throw new InvalidInputError(Codes.UNSUPPORTED_ENTRY, `archive entry '${h.name}' is a ${String(h.type)}: only regular files and directories can be imported`, { entry: h.name, type: String(h.type) })
      }
      const path = entryPath(prefix, h.name)
      if (path === undefined) throw new InvalidInputError(Codes.BAD_PATH, `archive entry '${h.name}' names no file`, { entry: h.name })
      const opts: PutOptions = { mode: h.mode & 0o7777, mtime: entryMtime(h), signal }
      if (h.size <= BUFFERED_FILE_BYTES) {
        const parts: Buffer[] = []
        for await (const p of entry as AsyncIterable<Buffer>) parts.push(p)
        if (batchBytes + h.size > BATCH_BYTES) await flush()
        batch.push({ ...opts, path, parts })
        batchBytes += h.size
        if (batch.length >= BATCH_FILES) await flush()
      } else {
        // Streamed: the archive waits on this file (the parser gives the next entry after it).
        await flush()
        await slot(0)
        const put = volumes.putFile(vol, path, entry as AsyncIterable<Uint8Array>, opts).then(rec => [rec])
        start(put, 0)
        await put.catch(() => {})
      }
    }
  } catch (err) {
    // Thrown by the parser (or the body): anything untyped is a broken archive.
    stop = err instanceof ReplicantError || signal.aborted ? err : new InvalidInputError(Codes.BAD_ARCHIVE, `not a valid tar stream: ${(err as Error).message}`)
  } finally {
    // The files before a bad entry are written (not after a write failed, or when cancelled).
    if (!signal.aborted) await flush()
    if ((failure !== undefined || stop !== undefined) && !ex.destroyed) ex.destroy()
    await Promise.allSettled([...inflight])
    await feeding
  }
  failure ??= stop
  if (failure !== undefined) throw asArchiveError(failure, result)
  return result
}

/** Input errors say how many files were imported before them (those stay). */
function asArchiveError (err: unknown, done: ImportResult): Error {
  if (err instanceof InvalidInputError) {
    return new InvalidInputError(err.code, `${err.message} (${done.files} files imported before it)`, { ...err.details, imported: done.files })
  }
  return err instanceof Error ? err : new Error(String(err))
}

/** The name of `path` inside an archive of `prefix`: relative, no leading slash. */
export function archiveName (prefix: string, path: string): string {
  const base = prefix.endsWith('/') ? prefix : prefix + '/'
  if (prefix !== '/' && path === prefix) return path.slice(path.lastIndexOf('/') + 1)
  return path.startsWith(base) ? path.slice(base.length) : path.slice(1)
}

/**
 * The live files under `prefix` as a tar stream (ustar, pax for long names), each with its
 * mode and mtime. A file that cannot be read (a chunk nobody holds) ends the stream with an
 * error: the archive is cut short, which tar reports, rather than holding a wrong file.
 */
export function exportTar (volumes: ArchiveVolumes, vol: string, prefix: string, signal: AbortSignal): AsyncIterable<Uint8Array> {
  const out = pack()
  void (async () => {
    try {
      for await (const rec of volumes.listFiles(vol, prefix, signal)) {
        const entry = out.entry({ name: archiveName(prefix, rec.path), size: rec.size, mode: rec.mode, mtime: new Date(rec.mtime), type: 'file' })
        for await (const bytes of volumes.readFile(vol, rec, undefined, signal)) {
          if (!entry.write(bytes)) await writable(entry)
          if (entry.destroyed || out.destroyed) return
        }
        await new Promise<void>((resolve, reject) => { entry.end(undefined); entry.once('finish', resolve); entry.once('error', reject) })
      }
      out.finalize()
    } catch (err) {
      out.destroy(err as Error)
    }
  })()
  return out as AsyncIterable<Uint8Array>
}
