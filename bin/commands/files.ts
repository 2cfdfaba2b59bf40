/** `replicant put | get | ls | rm`: the files of a volume. */
import { createReadStream, createWriteStream } from 'node:fs'
import { stat, rm } from 'node:fs/promises'
import { renameDurably } from '../../core/durable.js'
import { pipeline } from 'node:stream/promises'
import { type Cli, print, out, report, JSON_HELP } from '../cli.js'
import type { FileView } from '../../api/types.js'
import { InvalidInputError, Codes } from '../../core/errors.js'
import { normalizePath } from '../../core/paths.js'
import { isFolderMarker } from '../../core/records.js'
import { DEFAULT_PARALLEL, putTree, getTree, treeSummary } from './tree.js'
import { Progress, counted } from '../progress.js'
import { Readable } from 'node:stream'
import type { IncomingMessage } from 'node:http'

function parallelOf (v: string | undefined): number {
  const n = v === undefined ? DEFAULT_PARALLEL : Number(v)
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new InvalidInputError(Codes.BAD_REQUEST, `--parallel '${v}': expected a whole number from 1 to 256`)
  return n
}

/**
 * The one form of --range the CLI honours: a single `bytes=` range. Anything else (no unit,
 * several ranges, garbage) would be ignored by the server (RFC 9110), and the whole file
 * written under a command that asked for part of it: an error instead.
 */
export function checkRange (range: string | undefined): string | undefined {
  if (range === undefined) return undefined
  if (/^bytes=(\d+-\d*|-\d+)$/.test(range.trim())) return range.trim()
  const hint = /^\d*-\d*$/.test(range.trim()) ? ` (did you mean --range bytes=${range.trim()}?)` : ''
  const why = range.includes(',') ? 'only one range is supported' : 'expected bytes=START-END, bytes=START- or bytes=-SUFFIX'
  throw new InvalidInputError(Codes.BAD_RANGE, `--range '${range}': ${why}${hint}`)
}

/**
 * The files under PATH when PATH names a directory (ends with `/`, holds a folder marker, or
 * holds no file itself but has files under it); undefined for a file.
 */
async function directoryFiles (c: Awaited<ReturnType<Cli['client']>>, vol: string, path: string): Promise<{ base: string, files: FileView[] } | undefined> {
  const dir = path === '/' || path === '' || path.endsWith('/')
  const p = path === '/' || path === '' ? '/' : normalizePath(dir ? path.slice(0, -1) : path)
  const base = p === '/' ? '/' : p + '/'
  const { files } = await c.list(vol, dir ? base : p)
  if (dir) return { base, files }
  // A folder marker (an empty folder made over WebDAV) at PATH is a directory, not a file.
  if (files.some(f => f.path === p && !isFolderMarker(f))) return undefined
  const under = files.filter(f => f.path.startsWith(base))
  return under.length > 0 || files.some(f => f.path === p) ? { base, files: under } : undefined
}

/** A file's answer written to `out` under one progress line: bytes of its content-length (bin/progress.ts). */
async function receive (res: IncomingMessage, out: NodeJS.WritableStream, label: string, allowed = true): Promise<void> {
  const length = Number(res.headers['content-length'])
  let got = 0
  const progress = new Progress(() => ({ label, bytesDone: got, ...(Number.isSafeInteger(length) ? { bytesTotal: length } : {}) }), allowed ? {} : { shown: false })
  try {
    await pipeline(counted(res as AsyncIterable<Buffer>, (n) => { got += n; progress.update() }), out)
  } catch (err) {
    progress.stop(false)
    throw err
  }
  progress.stop()
}

export function registerFileCommands (cli: Cli): void {
  const { program } = cli
  program.command('put <volume> <localfile> <path>')
    .description('store LOCALFILE (or - for stdin) at PATH in VOLUME; a directory is stored whole, LOCALFILE/a/b at PATH/a/b')
    .option('--mode <octal>', 'file mode (default: the local file\'s)')
    .option('--parallel <n>', `files over 1 MiB sent at once for a directory (default ${DEFAULT_PARALLEL}; smaller ones go in tar batches)`)
    .option('--json', JSON_HELP)
    .action(async (vol: string, local: string, path: string, opts: { mode?: string, parallel?: string, json?: boolean }) => {
      const c = await cli.client()
      let rec: FileView
      if (local !== '-' && (await stat(local)).isDirectory()) {
        const r = await putTree(c, vol, local, path, parallelOf(opts.parallel))
        report(opts.json, r, () => { out(treeSummary(`stored in ${vol}:${path}`, r)) })
        if (r.failed > 0) process.exitCode = 1
        return
      }
      // One progress line on stderr (bin/progress.ts): bytes sent of the file's size (stdin: of no known total).
      let sent = 0
      const st = local === '-' ? undefined : await stat(local)
      if (st !== undefined && !st.isFile()) throw new Error(`${local} is not a regular file`)
      const progress = new Progress(() => ({ label: `put ${vol}:${path}`, bytesDone: sent, ...(st !== undefined ? { bytesTotal: st.size } : {}) }))
      const body = Readable.from(counted(st === undefined ? process.stdin : createReadStream(local), (n) => { sent += n; progress.update() }), { objectMode: false })
      try {
        rec = st === undefined
          ? await c.put(vol, path, body, { mode: opts.mode !== undefined ? parseInt(opts.mode, 8) : undefined })
          : await c.put(vol, path, body, { size: st.size, mode: opts.mode !== undefined ? parseInt(opts.mode, 8) : st.mode & 0o7777, mtime: st.mtimeMs })
      } catch (err) {
        progress.stop(false)
        throw err
      }
      progress.stop()
      report(opts.json, rec, () => { out(`stored ${vol}:${rec.path} (${rec.size} bytes, ${rec.chunks} chunks, seq ${rec.seq})`) })
    })

  program.command('get <volume> <path>')
    .description('write the file at PATH in VOLUME to stdout or -o FILE; a directory PATH is written under -o LOCALDIR')
    .option('-o, --output <file>', 'write to FILE (atomically, via a temporary file), or the directory LOCALDIR')
    .option('--range <range>', 'HTTP byte range, e.g. bytes=0-1023')
    .option('--snapshot <name>', 'read the file as the snapshot NAME shows it')
    .option('--parallel <n>', `files fetched at once for a directory (default ${DEFAULT_PARALLEL})`)
    .option('--json', 'with -o: print what was written as JSON (the file\'s bytes never go to stdout then)')
    .action(async (vol: string, path: string, opts: { output?: string, range?: string, snapshot?: string, parallel?: string, json?: boolean }) => {
      opts.range = checkRange(opts.range)
      const c = await cli.client()
      const tree = opts.range === undefined && opts.snapshot === undefined ? await directoryFiles(c, vol, path) : undefined
      if (tree !== undefined) {
        if (opts.output === undefined) throw new InvalidInputError(Codes.BAD_REQUEST, `${vol}:${path} is a directory: give -o LOCALDIR`)
        const r = await getTree(c, vol, tree.base, opts.output, tree.files, parallelOf(opts.parallel))
        report(opts.json, r, () => { out(treeSummary(`wrote ${vol}:${path} to ${opts.output}:`, r)) })
        if (r.failed > 0) process.exitCode = 1
        return
      }
      if (opts.output === undefined) {
        // stdout carries the file's bytes: a JSON summary after them would corrupt it.
        if (opts.json === true) throw new InvalidInputError(Codes.BAD_REQUEST, '--json needs -o FILE (without it the file is written to stdout)')
        const res = await c.open(vol, path, { range: opts.range, snapshot: opts.snapshot })
        // To stdout: a bar only when stdout is not the terminal the bar would be drawn over.
        await receive(res, process.stdout, `get ${vol}:${path}`, process.stdout.isTTY !== true)
        return
      }
      const tmp = `${opts.output}.replicant-part`
      // Ask the node first and create the file only for a good answer: an error (from the node
      // or from opening the file) then leaves nothing behind and is reported, not thrown unhandled.
      const res = await c.open(vol, path, { range: opts.range, snapshot: opts.snapshot })
      try {
        await receive(res, createWriteStream(tmp), `get ${vol}:${path}`)
        await renameDurably(tmp, opts.output)
      } catch (err) {
        res.destroy()
        await rm(tmp, { force: true })
        throw err
      }
      if (opts.json === true) print({ volume: vol, path, output: opts.output, bytes: (await stat(opts.output)).size, status: res.statusCode, range: res.headers['content-range'] ?? null })
    })

  program.command('ls <volume> [prefix]')
    .description('list files of VOLUME (under PREFIX)')
    .option('--json', 'print JSON')
    .option('--snapshot <name>', 'list the files the snapshot NAME shows')
    .action(async (vol: string, prefix: string | undefined, opts: { json?: boolean, snapshot?: string }) => {
      const { files } = await (await cli.client()).list(vol, prefix, { snapshot: opts.snapshot })
      if (opts.json === true) return print(files)
      for (const f of files) {
        out(`${f.mode.toString(8).padStart(4, '0')}\t${String(f.size).padStart(12)}\t${new Date(f.mtime).toISOString()}\t${f.path}`)
      }
    })

  program.command('rm <volume> <path>')
    .description('delete the file at PATH (a tombstone that replicates)')
    .option('--json', JSON_HELP)
    .action(async (vol: string, path: string, opts: { json?: boolean }) => {
      const r = await (await cli.client()).remove(vol, path)
      report(opts.json, r, () => { out(`removed ${vol}:${r.path} (seq ${r.seq})`) })
    })
}
