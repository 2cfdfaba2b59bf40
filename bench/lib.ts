/**
 * Shared plumbing for the benchmark suites: the suite contract, the per-suite context (temp dirs
 * and cleanup that also run on failure or Ctrl-C), repetition with medians, and table output.
 *
 * A suite is one file in bench/ exporting a `Suite`; bench/run.ts lists them.
 */
import { mkdtemp, rm, readdir, lstat, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * Data sizes: `quick` for a look in seconds; `standard` (the default, what `npm run bench`
 * runs) sized so that every suite together stays well under 10 minutes on a 2-core machine;
 * `full` the sizes of the benchmark brief (1 GiB files, 10,000 small files), which take longer.
 */
export type Scale = 'quick' | 'standard' | 'full'

export interface Flags {
  scale: Scale
  /** Repetitions per measurement; the median is printed. */
  reps: number
  /** Parent of every temp dir a suite creates. */
  tmpRoot: string
  /** Every `--name value` / `--name` given on the command line (suites read their own). */
  raw: Map<string, string | true>
}

export interface ResultTable {
  suite: string
  title: string
  columns: string[]
  rows: Array<Array<string | number>>
  notes?: string[]
}

export interface SuiteContext {
  readonly flags: Flags
  /** The value for the current scale. */
  pick: <T>(sizes: Record<Scale, T>) => T
  /** A fresh temp dir under the temp root, removed when the suite ends (also on failure). */
  tempDir: (label: string) => Promise<string>
  /** Runs when the suite ends, on failure, and on SIGINT/SIGTERM; last registered runs first. */
  onCleanup: (fn: () => Promise<void> | void) => void
  /** Prints a table and keeps it for --json. */
  table: (t: Omit<ResultTable, 'suite'>) => void
  log: (line: string) => void
  /** Value of a suite flag such as --chunk-size, if given. */
  flag: (name: string) => string | true | undefined
}

export interface Suite {
  name: string
  description: string
  run: (ctx: SuiteContext) => Promise<void>
}

export const KiB = 1024
export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

// ---- cleanup registry (process-wide so a signal can run every pending cleanup) ----

const cleanups: Array<() => Promise<void> | void> = []

export async function runCleanups (): Promise<void> {
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!
    try { await fn() } catch (err) { process.stderr.write(`cleanup failed: ${String(err)}\n`) }
  }
}

export function registerCleanup (fn: () => Promise<void> | void): () => void {
  cleanups.push(fn)
  return () => { const i = cleanups.indexOf(fn); if (i >= 0) cleanups.splice(i, 1) }
}

export function makeContext (suite: string, flags: Flags, results: ResultTable[]): SuiteContext {
  return {
    flags,
    pick: (sizes) => sizes[flags.scale],
    tempDir: async (label) => {
      const dir = await mkdtemp(join(flags.tmpRoot, `replicant-bench-${label}-`))
      registerCleanup(async () => { await rm(dir, { recursive: true, force: true }) })
      return dir
    },
    onCleanup: (fn) => { registerCleanup(fn) },
    table: (t) => {
      const full = { suite, ...t }
      results.push(full)
      printTable(full)
    },
    log: (line) => { process.stdout.write(line + '\n') },
    flag: (name) => flags.raw.get(name)
  }
}

// ---- measurement ----

export function median (xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Milliseconds since an arbitrary origin, sub-millisecond resolution. */
export const now = (): number => performance.now()

/** Runs `fn` and returns its duration in seconds (and its value). */
export async function timed<T> (fn: () => Promise<T>): Promise<{ s: number, value: T }> {
  const t0 = now()
  const value = await fn()
  return { s: (now() - t0) / 1000, value }
}

/**
 * CPU seconds (user + system, all threads) this process has used. On a shared machine CPU time
 * per byte moves far less with other load than wall-clock rates do.
 */
export function selfCpuSeconds (): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/** CPU seconds (user + system, all threads) used so far by process `pid`, from /proc/<pid>/stat. */
export async function procCpuSeconds (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces) start at field 3; utime, stime are 14, 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS
}

/** CPU seconds of `pid` and every process below it (Syncthing runs its work in a child of its monitor). */
export async function procTreeCpuSeconds (pid: number): Promise<number> {
  let total = await procCpuSeconds(pid).catch(() => 0)
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[])
  for (const t of tasks) {
    const kids = (await readFile(`/proc/${pid}/task/${t}/children`, 'utf8').catch(() => '')).trim().split(/\s+/).filter(k => k !== '')
    for (const k of kids) total += await procTreeCpuSeconds(Number(k))
  }
  return total
}

/** USER_HZ: Linux reports /proc times in 1/100 s on every mainstream architecture. */
const CLOCK_TICKS = 100

/** Collects named samples over repetitions; `med(name)` is the median. */
export class Samples {
  private readonly map = new Map<string, number[]>()
  add (name: string, value: number): void {
    const list = this.map.get(name) ?? []
    list.push(value)
    this.map.set(name, list)
  }

  all (name: string): number[] { return this.map.get(name) ?? [] }
  med (name: string): number { return median(this.all(name)) }
  has (name: string): boolean { return this.map.has(name) }
}

// ---- formatting ----

/** Decimal megabytes per second (10^6 B/s), the unit the docs quote. */
export const mbps = (bytes: number, seconds: number): number => bytes / seconds / 1e6

export function fmt (n: number, digits?: number): string {
  if (!Number.isFinite(n)) return '-'
  const d = digits ?? (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2)
  return n.toFixed(d)
}

export function ratio (x: number, base: number): string {
  const r = x / base
  if (!Number.isFinite(r)) return '-'
  return `${r.toFixed(r >= 1000 ? 0 : r >= 100 ? 1 : 2)}x`
}

export function fmtBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${i === 0 ? n : n.toFixed(n >= 100 ? 0 : 1)} ${units[i]}`
}

export function printTable (t: ResultTable): void {
  const cells = [t.columns, ...t.rows.map(r => r.map(String))]
  const widths = t.columns.map((_, i) => Math.max(...cells.map(r => (r[i] ?? '').length)))
  const line = (r: string[]): string => '| ' + r.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(' | ') + ' |'
  const out = [`\n### ${t.title}`, '', line(t.columns), '| ' + widths.map((w, i) => i === 0 ? '-'.repeat(w) : '-'.repeat(w - 1) + ':').join(' | ') + ' |']
  for (const r of cells.slice(1)) out.push(line(r))
  for (const n of t.notes ?? []) out.push('', n)
  process.stdout.write(out.join('\n') + '\n')
}

// ---- system facts ----

/** Allocated disk bytes (st_blocks * 512) and apparent bytes under `dir`. */
export async function diskUsage (dir: string): Promise<{ allocated: number, apparent: number, files: number }> {
  let allocated = 0
  let apparent = 0
  let files = 0
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) { await walk(p); continue }
      const st = await lstat(p)
      allocated += st.blocks * 512
      apparent += st.size
      files++
    }
  }
  await walk(dir)
  return { allocated, apparent, files }
}

/** Resets a process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0; needs permission). */
export async function resetPeakRss (pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/**
 * Fields of /proc/<pid>/status in bytes: VmHWM = peak RSS, VmRSS = current, split into RssAnon
 * (heap, buffers: what the process allocated) and RssFile (file pages mapped into the process,
 * e.g. LevelDB's mmap-ed tables: page cache, reclaimable, but counted in RSS and VmHWM).
 */
export async function procMemory (pid: number): Promise<{ peakRss: number, rss: number, rssAnon: number, rssFile: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)
    return m === null ? NaN : Number(m[1]) * 1024
  }
  return { peakRss: kb('VmHWM'), rss: kb('VmRSS'), rssAnon: kb('RssAnon'), rssFile: kb('RssFile') }
}

/** Runs `fn` over `items` with at most `limit` in flight; stops taking items after a failure and rethrows it. */
export async function pool<T> (items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]()
  let failed: { err: unknown } | undefined
  const worker = async (): Promise<void> => {
    while (failed === undefined) {
      const next = it.next()
      if (next.done === true) return
      try { await fn(next.value) } catch (err) { failed ??= { err } }
    }
  }
  // Every worker settles before this returns, so nothing is still in flight during cleanup.
  await Promise.all(Array.from({ length: limit }, worker))
  if (failed !== undefined) throw failed.err
}

/** A sync sequence as the async source the write paths take, each item made only when pulled. */
export async function * asyncSource<T> (items: Iterable<T>): AsyncGenerator<T> {
  for (const item of items) yield await Promise.resolve(item)
}

export function range (n: number): number[] {
  return Array.from({ length: n }, (_, i) => i)
}

/** Seeded Fisher-Yates shuffle (mulberry32), so random-order reads are repeatable. */
export function shuffled<T> (xs: T[], seed: number): T[] {
  const out = [...xs]
  let a = seed >>> 0
  const rnd = (): number => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    const tmp = out[i]; out[i] = out[j]; out[j] = tmp
  }
  return out
}
