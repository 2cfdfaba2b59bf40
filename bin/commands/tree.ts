/**
 * Directory trees in one command: `replicant put VOL LOCALDIR PATH` and `replicant get VOL PATH
 * -o LOCALDIR`. Files go over N parallel HTTP requests of one process; mode and mtime are kept;
 * a file that fails is reported on stderr and the rest goes on (the caller exits non-zero).
 * One progress line (files, bytes, rate, ETA; bin/progress.ts) on stderr only when it is a terminal.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { opendir, lstat, mkdir, rm, chmod, utimes } from 'node:fs/promises'
import { join, relative, resolve, sep, dirname } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReplicantClient } from '../../api/client.js'
import type { FileView } from '../../api/types.js'
import { renameDurably } from '../../core/durable.js'
import { normalizePath } from '../../core/paths.js'
import { isFolderMarker } from '../../core/records.js'
import { fmtBytes } from '../cli.js'
import { Progress, counted } from '../progress.js'

/** Files in flight: more of them share each group commit on the node (docs/ARCHITECTURE.md). */
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
      const st = await lstat(p)
      items.push({ rel: relative(root, p).split(sep).join('/'), size: st.size, mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs) })
    }
  }
  await visit(root)
  return items
}

const under = (base: string, rel: string): string => base === '/' ? `/${rel}` : `${base.replace(/\/+$/, '')}/${rel}`

/**
 * What put and get share: `work` on every item, `parallel` at a time, under one progress line;
 * bytes count as they flow (`tally`), a file that fails is noted and taken back out of them.
 */
async function transfer<T extends { size: number }> (items: T[], parallel: number, name: (item: T) => string, work: (item: T, tally: (n: number) => void) => Promise<void>, notes: string[] = []): Promise<Omit<TreeResult, 'skipped' | 'seconds'>> {
  const done = { files: 0, bytes: 0 }
  const bytesTotal = items.reduce((n, i) => n + i.size, 0)
  const progress = new Progress(() => ({ bytesDone: done.bytes, bytesTotal, filesDone: done.files, filesTotal: items.length }))
  for (const l of notes) progress.note(l)
  let failed = 0
  await pool(items, parallel, async (item) => {
    let flowed = 0
    try {
      await work(item, (n) => { flowed += n; done.bytes += n })
      done.files++
      done.bytes += item.size - flowed // a file that changed size while read counts as listed
    } catch (err) {
      failed++
      done.bytes -= flowed
      progress.note(`failed ${name(item)}: ${(err as Error).message}`)
    }
  })
  progress.stop()
  return { ...done, failed }
}

/** `replicant put VOL LOCALDIR PATH`: LOCALDIR/a/b is stored at PATH/a/b. */
export async function putTree (c: ReplicantClient, vol: string, localDir: string, path: string, parallel: number): Promise<TreeResult> {
  const started = Date.now()
  if (path !== '/') normalizePath(path.endsWith('/') ? path.slice(0, -1) : path) // a bad PATH fails before any file goes
  const skipped: string[] = []
  const items = await walk(localDir, (rel, why) => { skipped.push(`skipped ${rel}: ${why}`) })
  const r = await transfer(items, parallel, i => i.rel, async (item, tally) => {
    const body = Readable.from(counted(createReadStream(join(localDir, item.rel)), tally))
    await c.put(vol, under(path, item.rel), body, { size: item.size, mode: item.mode, mtime: item.mtime })
  }, skipped)
  return { ...r, skipped: skipped.length, seconds: (Date.now() - started) / 1000 }
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
  const r = await transfer(files.filter(f => !isFolderMarker(f)), parallel, f => f.path, async (f, tally) => {
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
  })
  return { ...r, skipped: 0, seconds: (Date.now() - started) / 1000 }
}

/** The summary line of a tree command. */
export function treeSummary (verb: string, r: TreeResult): string {
  const rate = r.seconds > 0 ? ` (${Math.round(r.files / r.seconds)} files/s, ${fmtBytes(r.bytes / r.seconds)}/s)` : ''
  return `${verb} ${r.files} files, ${fmtBytes(r.bytes)} in ${r.seconds.toFixed(1)} s${rate}` +
    (r.failed > 0 ? `; ${r.failed} failed` : '') + (r.skipped > 0 ? `; ${r.skipped} skipped` : '')
}
