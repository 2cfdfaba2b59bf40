/**
 * The CLI's one progress bar (put/get of trees, dump, restore, volume wait, volume move): a
 * line on stderr redrawn in place, at most every REDRAW_MS, with done/total, files, rate and
 * ETA, and at the end a summary line (totals, time, average rate). Drawn only when stderr is a
 * terminal; otherwise the command is quiet (its result line on stdout is all).
 * REPLICANT_PROGRESS=always draws it anyway (tests, logs kept with `script`), =never never.
 */
import { RateMeter, type RateEta } from '../core/rate.js'
import { bar, fmtBytes } from './cli.js'

export const REDRAW_MS = 200

/** Whether progress is drawn: stderr a terminal, unless REPLICANT_PROGRESS says otherwise. */
export function progressShown (env = process.env.REPLICANT_PROGRESS, tty = process.stderr.isTTY === true): boolean {
  if (env === 'always' || env === '1') return true
  if (env === 'never' || env === '0') return false
  return tty
}

/** What one redraw shows. `bytesTotal` undefined: no bar, no ETA (the size is not known). */
export interface ProgressView {
  /** Before the figures: `dump v`, `move v: copying to 1a2b3c4d`. */
  label?: string
  bytesDone: number
  bytesTotal?: number
  /** `~`: the total is an estimate. */
  estimated?: boolean
  filesDone?: number
  filesTotal?: number
  /** A rate known elsewhere (the node's copy); else measured here from bytesDone. */
  rate?: number | null
  etaSeconds?: number | null
  /** After the figures: a phase, a state. */
  note?: string
}

export function secondsText (s: number): string {
  if (s < 120) return `${Math.round(s)}s`
  if (s < 7200) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

/** One progress line (no terminal codes). A rate or ETA in `v` wins over the measured one. */
export function progressText (v: ProgressView, measured: RateEta): string {
  const rate = v.rate ?? measured.rate
  const eta = v.etaSeconds ?? measured.etaSeconds
  const parts: string[] = []
  if (v.label !== undefined) parts.push(v.label)
  if (v.bytesTotal !== undefined) parts.push(bar(v.bytesDone, v.bytesTotal), `${fmtBytes(v.bytesDone)}/${v.estimated === true ? '~' : ''}${fmtBytes(v.bytesTotal)}`)
  else parts.push(fmtBytes(v.bytesDone))
  if (v.filesTotal !== undefined) parts.push(`files ${v.filesDone ?? 0}/${v.filesTotal}`)
  if (rate !== null) parts.push(`${fmtBytes(rate)}/s`)
  if (eta !== null && v.bytesTotal !== undefined) parts.push(`eta ${secondsText(eta)}`)
  if (v.note !== undefined) parts.push(v.note)
  return parts.join(' ')
}

/** The summary line at the end: what was done, in how long, at what average rate. */
export function summaryText (v: ProgressView, seconds: number): string {
  const parts: string[] = []
  if (v.label !== undefined) parts.push(`${v.label}:`)
  parts.push(fmtBytes(v.bytesDone))
  if (v.filesTotal !== undefined) parts.push(`files ${v.filesDone ?? 0}/${v.filesTotal}`)
  parts.push(`in ${seconds.toFixed(1)} s`)
  if (seconds > 0) parts.push(`(${fmtBytes(v.bytesDone / seconds)}/s)`)
  return parts.join(' ')
}

export interface ProgressOptions {
  /** Default: progressShown(). */
  shown?: boolean
  /** Where lines go; default stderr. */
  write?: (s: string) => void
  /** The clock; default Date.now. */
  now?: () => number
  /** Redraws on a timer too (so a stalled count still shows its rate falling); default true. */
  timer?: boolean
  /** The terminal's width: longer lines are cut (a wrapped line breaks `\r`). */
  columns?: number
}

/**
 * A progress line for the life of one command. `view` is asked at each redraw; callers keep
 * their counters up to date and call `update()` when they change (a redraw at most every
 * REDRAW_MS, however often it is called). The view may be a plain line (a phase with no figures).
 */
export class Progress {
  readonly shown: boolean
  private readonly meter = new RateMeter()
  private readonly write: (s: string) => void
  private readonly now: () => number
  private readonly columns: number | undefined
  private readonly started: number
  private timer: NodeJS.Timeout | undefined
  private lastDraw = -Infinity
  private lastLine = ''
  private drawn = 0
  private stopped = false

  constructor (private readonly view: () => ProgressView | string, opts: ProgressOptions = {}) {
    this.shown = opts.shown ?? progressShown()
    this.write = opts.write ?? ((s) => { process.stderr.write(s) })
    this.now = opts.now ?? Date.now
    this.columns = opts.columns ?? process.stderr.columns
    this.started = this.now()
    if (!this.shown) return
    // The rate counts from now: the first sample is what the caller holds at the start.
    const v = view()
    if (typeof v !== 'string') this.meter.sample(v.bytesDone, v.bytesTotal, this.started)
    this.draw() // at once: a command that ends within REDRAW_MS still showed where it started
    if (opts.timer !== false) {
      this.timer = setInterval(() => { this.update() }, REDRAW_MS)
      this.timer.unref()
    }
  }

  /** How many times the line was drawn (tests). */
  get draws (): number { return this.drawn }

  /** Redraws, unless the last redraw was less than REDRAW_MS ago. */
  update (): void {
    if (!this.shown || this.stopped || this.now() - this.lastDraw < REDRAW_MS) return
    this.draw()
  }

  private draw (): void {
    const now = this.now()
    const v = this.view()
    const line = typeof v === 'string' ? v : progressText(v, this.meter.sample(v.bytesDone, v.bytesTotal, now))
    this.put(line)
    this.lastDraw = now
  }

  private put (line: string): void {
    const cut = this.columns !== undefined && this.columns > 1 && line.length >= this.columns ? line.slice(0, this.columns - 1) : line
    this.write(`\r${cut}\x1b[K`)
    this.lastLine = cut
    this.drawn++
  }

  /** A line of its own (a failure, a warning) above the bar, which is drawn again after it. */
  note (line: string): void {
    if (!this.shown || this.drawn === 0) { this.write(`${line}\n`); return }
    this.write(`\r\x1b[K${line}\n`)
    this.write(`\r${this.lastLine}\x1b[K`)
  }

  /** Ends the bar with the summary line (or nothing, when not shown). `summary`: false for none. */
  stop (summary = true): void {
    if (!this.shown || this.stopped) return
    this.stopped = true
    clearInterval(this.timer)
    this.timer = undefined
    const v = this.view()
    if (summary && typeof v !== 'string') this.put(summaryText(v, (this.now() - this.started) / 1000))
    else this.draw()
    this.write('\n')
  }
}

/** Passes an async iterable of bytes through, telling `tally` the size of each piece. */
export async function * counted<B extends Uint8Array> (source: AsyncIterable<B>, tally: (n: number) => void): AsyncGenerator<B> {
  for await (const b of source) {
    tally(b.byteLength)
    yield b
  }
}
