/**
 * A fuzz run: batches of cases drawn by fast-check from a seed, sent to a real target node
 * (over the wire or in memory), with the node's RSS sampled every second, a member's read
 * checked every `checkEvery` units, and the store verified at the end. Any crash, unhandled
 * rejection, hung handler, failed read, RSS past the bound or store corruption is a finding,
 * saved with its input.
 */
import fc from 'fast-check'
import type { SendMode } from './fuzz-send.js'
import type { FuzzTarget } from './fuzz-target.js'
import { saveFinding, type Finding, type FindingKind, type SavedInput } from './fuzz-findings.js'

/** What a run needs of a protocol or of the HTTP API. */
export interface Fuzzer<C> {
  name: string
  arb: fc.Arbitrary<C>
  /** Frames (or requests) a case counts for. */
  units: (c: C) => number
  run: (c: C, mode: SendMode, opts: { hungMs: number, abandonOk: boolean }) => Promise<Outcome>
  saved: (c: C) => Pick<SavedInput, 'case' | 'http'>
}

export interface Outcome { problem?: { kind: FindingKind, message: string }, abandoned?: Promise<void> }

export interface RunOptions {
  /** Frames (requests for http) to send in all. */
  frames: number
  seed: number
  /** Cases drawn per fast-check run. */
  batch?: number
  /** Cases in flight at once. */
  concurrency?: number
  /** Every wireEvery-th batch goes over the wire, the others in memory (1: all wire; 0: all memory). */
  wireEvery?: number
  checkEvery?: number
  maxRssMiB?: number
  /** A handler that has not ended this long after the sender closed is hung. */
  hungMs?: number
  /** Open abandoned streams allowed at once (more become resets). */
  maxAbandoned?: number
  corpusDir?: string
  /** Stop sending after this long, whatever the count reached. */
  maxSeconds?: number
  /** Stop at the first finding. */
  bail?: boolean
  log?: (line: string) => void
}

export interface ModeCount { frames: number, cases: number, ms: number }

export interface RunSummary {
  name: string
  seed: number
  frames: number
  cases: number
  seconds: number
  /** CPU seconds the process used (node and fuzzer: the machine may be shared). */
  cpuSeconds: number
  wire: ModeCount
  memory: ModeCount
  rssStartMiB: number
  rssMaxMiB: number
  checks: number
  /** Cases the sender could not send (dial or stream refused), and the last such error. */
  senderErrors: number
  lastSenderError?: string
  findings: Finding[]
  saved: string[]
  verified?: { files: number, bytes: number }
}

const MiB = 1024 * 1024
const rate = (m: ModeCount): string => m.ms === 0 ? '-' : `${Math.round(m.frames / (m.ms / 1000))}/s`

export function formatSummary (s: RunSummary): string {
  return [
    `fuzz ${s.name} seed ${s.seed}: ${s.frames} frames in ${s.cases} cases (streams), ${s.seconds.toFixed(1)} s, ${s.cpuSeconds.toFixed(1)} CPU s (${Math.round(s.frames / Math.max(s.cpuSeconds, 0.001))} frames per CPU second)`,
    `  wire ${s.wire.frames} frames (${rate(s.wire)}), memory ${s.memory.frames} frames (${rate(s.memory)})`,
    `  RSS ${s.rssStartMiB} MiB at start, ${s.rssMaxMiB} MiB max; member reads checked ${s.checks} times`,
    `  cases the sender could not send: ${s.senderErrors}${s.lastSenderError !== undefined ? ` (last: ${s.lastSenderError})` : ''}`,
    `  store after the run: ${s.verified !== undefined ? `${s.verified.files} files, ${s.verified.bytes} bytes verified` : 'not verified'}`,
    `  findings: ${s.findings.length === 0 ? 'none' : ''}`,
    ...s.findings.map(f => `    ${f.kind}: ${f.message}${f.input !== undefined ? ` (path ${f.input.path}, case ${f.input.index}${f.input.case !== undefined ? `, ${f.input.case.protocol} as ${f.input.case.identity}: ${f.input.case.mutation}` : ''})` : ''}`),
    ...s.saved.map(p => `    saved ${p}`)
  ].join('\n')
}

class Done extends Error {}

export async function runFuzz<C> (target: FuzzTarget, fuzzer: Fuzzer<C>, opts: RunOptions): Promise<RunSummary> {
  const batchSize = opts.batch ?? 16
  const concurrency = opts.concurrency ?? 32
  const wireEvery = opts.wireEvery ?? 10
  const checkEvery = opts.checkEvery ?? 20_000
  const maxRss = (opts.maxRssMiB ?? 1024) * MiB
  const hungMs = opts.hungMs ?? 45_000
  const maxAbandoned = opts.maxAbandoned ?? 8
  const log = opts.log ?? (() => {})
  const s: RunSummary = {
    name: fuzzer.name, seed: opts.seed, frames: 0, cases: 0, seconds: 0, cpuSeconds: 0, wire: { frames: 0, cases: 0, ms: 0 }, memory: { frames: 0, cases: 0, ms: 0 },
    rssStartMiB: Math.round(process.memoryUsage().rss / MiB), rssMaxMiB: 0, checks: 0, senderErrors: 0, findings: [], saved: []
  }
  let stop = false
  const saving: Array<Promise<void>> = []
  let inFlight: Array<{ c: C, path: string, index: number, mode: SendMode }> = []
  const inputOf = (x: { c: C, path: string, index: number, mode: SendMode }): SavedInput => ({ name: fuzzer.name, seed: opts.seed, path: x.path, index: x.index, mode: x.mode, ...fuzzer.saved(x.c) })
  const find = (kind: FindingKind, message: string, input?: SavedInput): void => {
    const f: Finding = { kind, message, ...(input !== undefined ? { input } : {}) }
    s.findings.push(f)
    log(`finding: ${kind}: ${message}${input !== undefined ? ` (path ${input.path}, case ${input.index}${input.case !== undefined ? `, ${input.case.protocol} as ${input.case.identity}: ${input.case.mutation}` : ` ${input.http?.note ?? ''}`})` : ''}`)
    // Saved at once: a run that is killed, or dies, keeps what it found.
    if (opts.corpusDir !== undefined) saving.push(saveFinding(opts.corpusDir, f).then(p => { if (p !== undefined && !s.saved.includes(p)) s.saved.push(p) }, () => {}))
    if (opts.bail === true || ['crash', 'unhandled-rejection', 'not-serving', 'rss', 'store'].includes(kind)) stop = true
  }
  const runWide = (kind: FindingKind) => (err: unknown): void => { find(kind, String((err as Error)?.stack ?? err), inFlight[0] !== undefined ? inputOf(inFlight[0]) : undefined) }
  const onRejection = runWide('unhandled-rejection')
  const onException = runWide('crash')
  process.on('unhandledRejection', onRejection)
  process.on('uncaughtException', onException)
  const sampler = setInterval(() => {
    const rss = process.memoryUsage().rss
    s.rssMaxMiB = Math.max(s.rssMaxMiB, Math.round(rss / MiB))
    if (rss > maxRss && !stop) find('rss', `RSS ${Math.round(rss / MiB)} MiB is over the bound of ${maxRss / MiB} MiB`, inFlight[0] !== undefined ? inputOf(inFlight[0]) : undefined)
  }, 1000)
  const abandoned = new Set<Promise<void>>()
  const pool = new Set<Promise<void>>()
  const runOne = async (x: { c: C, path: string, index: number, mode: SendMode }): Promise<void> => {
    let out: Outcome
    try {
      out = await fuzzer.run(x.c, x.mode, { hungMs, abandonOk: abandoned.size < maxAbandoned })
    } catch (err) {
      // The sender's own failures (a refused dial, a stream limit): counted; a node that
      // stopped answering shows in the member check.
      s.senderErrors++
      s.lastSenderError = (err as Error).message
      out = {}
    }
    if (out.problem !== undefined) find(out.problem.kind, out.problem.message, inputOf(x))
    if (out.abandoned !== undefined) {
      const p: Promise<void> = withDeadline(out.abandoned, hungMs + 30_000).then(ok => {
        abandoned.delete(p)
        if (!ok) find('hung', `an abandoned stream was not ended by the node within ${hungMs + 30_000} ms`, inputOf(x))
      })
      abandoned.add(p)
    }
  }
  const started = Date.now()
  const cpu0 = process.cpuUsage()
  let run = 0
  let nextCheck = checkEvery
  let nextLog = 0
  try {
    const prop = fc.asyncProperty(fc.array(fuzzer.arb, { minLength: batchSize, maxLength: batchSize }), async cases => {
      if (stop || s.frames >= opts.frames || (opts.maxSeconds !== undefined && Date.now() - started > opts.maxSeconds * 1000)) throw new Done()
      const path = String(run)
      const mode: SendMode = wireEvery > 0 && run % wireEvery === 0 ? 'wire' : 'memory'
      run++
      inFlight = cases.map((c, index) => ({ c, path, index, mode }))
      const t0 = Date.now()
      // Cases run in a pool, not batch by batch: one slow sender does not hold up the rest.
      for (const x of inFlight) {
        while (pool.size >= concurrency) await Promise.race(pool)
        const p: Promise<void> = runOne(x).finally(() => { pool.delete(p) })
        pool.add(p)
      }
      const m = mode === 'wire' ? s.wire : s.memory
      const units = cases.reduce((n, c) => n + fuzzer.units(c), 0)
      m.frames += units
      m.cases += cases.length
      m.ms += Date.now() - t0
      s.frames += units
      s.cases += cases.length
      if (s.frames >= nextCheck) {
        nextCheck = s.frames + checkEvery
        s.checks++
        await target.checkServes().catch((err: Error) => { find('not-serving', `the member could not read through the target after ${s.frames} frames: ${err.message}`, inputOf(inFlight[0])) })
      }
      if (Date.now() >= nextLog) {
        nextLog = Date.now() + 10_000
        const mu = process.memoryUsage()
        log(`${fuzzer.name}: ${s.frames} frames (${s.cases} cases), wire ${rate(s.wire)}, memory ${rate(s.memory)}, RSS ${Math.round(mu.rss / MiB)} (max ${s.rssMaxMiB}) MiB, heap ${Math.round(mu.heapUsed / MiB)}, buffers ${Math.round(mu.arrayBuffers / MiB)} MiB, findings ${s.findings.length}`)
      }
      return true
    })
    const res = await fc.check(prop, { seed: opts.seed, numRuns: Number.MAX_SAFE_INTEGER, endOnFailure: true })
    if (res.failed && !(res.errorInstance instanceof Done)) find('crash', `fuzz property failed: ${String(res.errorInstance)}`)
    await Promise.all([...pool])
    await Promise.all([...abandoned])
    if (!stop) {
      s.checks++
      await target.checkServes().catch((err: Error) => { find('not-serving', `the member could not read through the target at the end: ${err.message}`) })
    }
  } finally {
    clearInterval(sampler)
    s.seconds = (Date.now() - started) / 1000
    const cpu = process.cpuUsage(cpu0)
    s.cpuSeconds = (cpu.user + cpu.system) / 1e6
    s.rssMaxMiB = Math.max(s.rssMaxMiB, Math.round(process.memoryUsage().rss / MiB))
  }
  try {
    s.verified = await target.stopAndVerify()
  } catch (err) {
    find('store', `the store did not verify after the run: ${(err as Error).message}`)
  } finally {
    process.off('unhandledRejection', onRejection)
    process.off('uncaughtException', onException)
  }
  await Promise.all(saving)
  return s
}

async function withDeadline (p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(false), ms) })
  try { return await Promise.race([p.then(() => true), t]) } finally { clearTimeout(timer) }
}
