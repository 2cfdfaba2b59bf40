/**
 * Directory trees in one command: `replicant put VOL LOCALDIR PATH` and `replicant get VOL PATH
 * -o LOCALDIR`, in one process. A put sends small files as tar batches to the import route and
 * bigger ones as N parallel PUTs; a get fetches N files at once. Mode and mtime are kept; a
 * file that fails is reported on stderr and the rest goes on (the caller exits non-zero).
 * One progress line (files, bytes, rate, ETA; bin/progress.ts) on stderr only when it is a terminal.
 */
import { createReadStream, createWriteStream, lstatSync } from 'node:fs'
import { opendir, mkdir, rm, chmod, utimes, readFile } from 'node:fs/promises'
import { join, relative, resolve, sep, dirname } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { pack } from 'tar-stream'
import type { ReplicantClient } from '../../api/client.js'
import type { FileView } from '../../api/types.js'
import { renameDurably } from '../../core/durable.js'
import { normalizePath } from '../../core/paths.js'
import { isFolderMarker } from '../../core/records.js'
import { fmtBytes } from '../cli.js'
import { Progress, counted } from '../progress.js'

/** Files over 1 MiB in flight (smaller ones go in tar batches; docs/ARCHITECTURE.md "Trees"). */
export const DEFAULT_PARALLEL = 16

export interface TreeResult { files: number, bytes: number, failed: number, skipped: number, seconds: number }

interface Item { rel: string, size: number, mode: number, mtime: number }

/** Runs `work` on every item, `parallel` at a time. */
async function pool<T> (items: T[], parallel: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, items.length)) }, async () => {
    while (next < items.length) await work(items[next++])
  }))
}

/** Every regular file under `root` (sorted by path); other entries are reported as skipped. */
async function walk (root: string, skipped: (rel: string, why: string) => void): Promise<Item[]> {
  const items: Item[] = []
  const visit = async (dir: string): Promise<void> => {
    const entries = []
    for await (const e of await opendir(dir)) entries.push(e)
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    for (const e of entries) {
      const p = join(dir, e.name)
      if (e.isDirectory()) { await visit(p); continue }
      if (!e.isFile()) { skipped(relative(root, p), 'not a regular file'); continue }
      // Synchronous: a stat is microseconds, a thread-pool round trip each costs more CPU than that.
      const st = lstatSync(p)
      items.push({ rel: relative(root, p).split(sep).join('/'), size: st.size, mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs) })
    }
  }
  await visit(root)
  return items
}

const under = (base: string, rel: string): string => base === '/' ? `/${rel}` : `${base.replace(/\/+$/, '')}/${rel}`

/** Files and bytes done so far, and files failed: counted as the work goes. */
type Tally = Omit<TreeResult, 'skipped' | 'seconds'>
const tally = (): Tally => ({ files: 0, bytes: 0, failed: 0 })

/** A file that failed inside a unit of work (one of a batch); the rest of the unit went on. */
type Fail = (what: string, err: Error) => void

/**
 * What put and get share: `work` on every item, `parallel` at a time, under one progress line;
 * bytes count as they flow (`tally`), a file that fails is noted and taken back out of them.
 * An item may stand for several files (`files`, a batch): its work reports the ones that fail.
 */
async function transfer<T extends { size: number, files?: number }> (items: T[], parallel: number, name: (item: T) => string, work: (item: T, tally: (n: number) => void, fail: Fail) => Promise<void>, progress: Progress, done: Tally): Promise<Tally> {
  await pool(items, parallel, async (item) => {
    let flowed = 0
    let failedHere = 0
    const fail: Fail = (what, err) => { failedHere++; done.failed++; progress.note(`failed ${what}: ${err.message}`) }
    try {
      await work(item, (n) => { flowed += n; done.bytes += n }, fail)
      done.files += (item.files ?? 1) - failedHere
      if (item.files === undefined) done.bytes += item.size - flowed // a file that changed size while read counts as listed
    } catch (err) {
      done.failed++
      done.bytes -= flowed
      progress.note(`failed ${name(item)}: ${(err as Error).message}`)
    }
  })
  return done
}

/** A progress line over `items`, with `notes` printed above it; `done` is what it shows. */
function progressOf (items: Array<{ size: number, files?: number }>, done: () => { bytes: number, files: number }, notes: string[]): Progress {
  const bytesTotal = items.reduce((n, i) => n + i.size, 0)
  const filesTotal = items.reduce((n, i) => n + (i.files ?? 1), 0)
  const progress = new Progress(() => ({ bytesDone: done().bytes, bytesTotal, filesDone: done().files, filesTotal }))
  for (const l of notes) progress.note(l)
  return progress
}

/**
 * Files up to this size go to the node in tar batches (the import route, which writes a batch
 * with one chunk write and one commit); bigger ones, and the files of a batch that failed,
 * one PUT each.
 */
const BATCHED_FILE_BYTES = 1024 * 1024
const BATCH_FILES = 256
const BATCH_BYTES = 8 * 1024 * 1024
/** Batches sent at once (each is one import request, up to BATCH_BYTES in memory on both ends). */
const PARALLEL_BATCHES = 2
/** Local files read ahead of the archive being written. */
const READ_AHEAD_FILES = 16

interface Batch { items: Item[], size: number, files: number }

/** Consecutive small items as batches of at most BATCH_FILES files and BATCH_BYTES bytes. */
function batches (items: Item[]): Batch[] {
  const out: Batch[] = []
  let cur: Batch | undefined
  for (const i of items) {
    if (cur === undefined || cur.files >= BATCH_FILES || cur.size + i.size > BATCH_BYTES) out.push(cur = { items: [], size: 0, files: 0 })
    cur.items.push(i)
    cur.size += i.size
    cur.files++
  }
  return out
}

/** `replicant put VOL LOCALDIR PATH`: LOCALDIR/a/b is stored at PATH/a/b. */
export async function putTree (c: ReplicantClient, vol: string, localDir: string, path: string, parallel: number): Promise<TreeResult> {
  const started = Date.now()
  if (path !== '/') normalizePath(path.endsWith('/') ? path.slice(0, -1) : path) // a bad PATH fails before any file goes
  const skipped: string[] = []
  const items = await walk(localDir, (rel, why) => { skipped.push(`skipped ${rel}: ${why}`) })
  const putOne = async (item: Item, tally: (n: number) => void): Promise<void> => {
    const body = Readable.from(counted(createReadStream(join(localDir, item.rel)), tally))
    await c.put(vol, under(path, item.rel), body, { size: item.size, mode: item.mode, mtime: item.mtime })
  }
  const small = batches(items.filter(i => i.size <= BATCHED_FILE_BYTES))
  const big = items.filter(i => i.size > BATCHED_FILE_BYTES)
  const ts = tally()
  const tb = tally()
  const progress = progressOf([...small, ...big], () => ({ bytes: ts.bytes + tb.bytes, files: ts.files + tb.files }), skipped)
  const sendBatch = async (b: Batch, tally: (n: number) => void, fail: Fail): Promise<void> => {
    try {
      const r = await c.importTar(vol, path, tarOf(localDir, b.items))
      if (r.files !== b.files) throw new Error(`the node imported ${r.files} of ${b.files} files`)
      tally(b.size)
    } catch {
      // Which file failed (a local read, a bad name, the node) is found one PUT at a time.
      for (const item of b.items) {
        let flowed = 0
        try { await putOne(item, n => { flowed += n }) } catch (err) { fail(item.rel, err as Error); continue }
        tally(flowed)
      }
    }
  }
  await Promise.all([
    transfer(small, PARALLEL_BATCHES, b => b.items[0].rel, sendBatch, progress, ts),
    transfer(big, parallel, i => i.rel, putOne, progress, tb)
  ])
  progress.stop()
  return { files: ts.files + tb.files, bytes: ts.bytes + tb.bytes, failed: ts.failed + tb.failed, skipped: skipped.length, seconds: (Date.now() - started) / 1000 }
}

/**
 * The items as a tar stream (tar-stream), each file read whole (they are small) with its mode
 * and its mtime to the millisecond (a pax `mtime`; ustar keeps whole seconds only). A file that
 * cannot be read fails the stream, and so the batch.
 */
function tarOf (localDir: string, items: Item[]): Readable {
  const out = pack()
  void (async () => {
    try {
      // Reads run a few files ahead of the archive, in the thread pool: a synchronous read
      // costs less CPU when the file is cached, but waits on the disk one file at a time when
      // it is not (a profile showed 2.4 s of the CLI's 5.8 s blocked in read).
      const reads: Array<Promise<Buffer> | undefined> = []
      const readAhead = (k: number): void => {
        while (reads.length < Math.min(items.length, k + READ_AHEAD_FILES)) {
          const r = readFile(join(localDir, items[reads.length].rel))
          r.catch(() => {}) // surfaced when awaited below
          reads.push(r)
        }
      }
      for (const [k, item] of items.entries()) {
        readAhead(k)
        const bytes = await reads[k]!
        reads[k] = undefined
        await new Promise<void>((resolve, reject) => {
          out.entry({ name: item.rel, size: bytes.byteLength, mode: item.mode, mtime: new Date(item.mtime), type: 'file', pax: { mtime: (item.mtime / 1000).toFixed(3) } }, bytes, err => { if (err != null) reject(err); else resolve() })
        })
      }
      out.finalize()
    } catch (err) {
      out.destroy(err as Error)
    }
  })()
  return out as unknown as Readable
}

/** `replicant get VOL PATH -o LOCALDIR`: PATH/a/b is written to LOCALDIR/a/b (each file atomically). */
/** `base`: the directory's path, ending with `/`. */
export async function getTree (c: ReplicantClient, vol: string, base: string, localDir: string, files: FileView[], parallel: number): Promise<TreeResult> {
  const started = Date.now()
  const root = resolve(localDir)
  await mkdir(root, { recursive: true })
  const local = (f: FileView): string => {
    const dest = resolve(root, ...f.path.slice(base.length).split('/'))
    // The node validates paths; checked again here, as a local file name must stay under LOCALDIR.
    if (!dest.startsWith(root + sep)) throw new Error(`${f.path} would land outside ${localDir}`)
    return dest
  }
  // Folder markers (empty folders made over WebDAV) are directories here, not files.
  for (const f of files) if (isFolderMarker(f)) await mkdir(local(f), { recursive: true })
  const wanted = files.filter(f => !isFolderMarker(f))
  const r = tally()
  const progress = progressOf(wanted, () => r, [])
  await transfer(wanted, parallel, f => f.path, async (f, tally) => {
    const dest = local(f)
    const tmp = `${dest}.replicant-part`
    await mkdir(dirname(dest), { recursive: true })
    const res = await c.open(vol, f.path)
    try {
      await pipeline(res, async function * (source: AsyncIterable<Uint8Array>) { yield * counted(source, tally) }, createWriteStream(tmp, { mode: 0o600 }))
      await chmod(tmp, f.mode)
      await utimes(tmp, f.mtime / 1000, f.mtime / 1000)
      await renameDurably(tmp, dest)
    } catch (err) {
      res.destroy()
      await rm(tmp, { force: true })
      throw err
    }
  }, progress, r)
  progress.stop()
  return { ...r, skipped: 0, seconds: (Date.now() - started) / 1000 }
}

/** The summary line of a tree command. */
export function treeSummary (verb: string, r: TreeResult): string {
  const rate = r.seconds > 0 ? ` (${Math.round(r.files / r.seconds)} files/s, ${fmtBytes(r.bytes / r.seconds)}/s)` : ''
  return `${verb} ${r.files} files, ${fmtBytes(r.bytes)} in ${r.seconds.toFixed(1)} s${rate}` +
    (r.failed > 0 ? `; ${r.failed} failed` : '') + (r.skipped > 0 ? `; ${r.skipped} skipped` : '')
}
