/**
 * chunking: the chunk size and chunking method decision.
 *
 * (a) throughput of fixed-size chunking + sha256 vs content-defined chunking (FastCDC, bench/cdc.ts)
 *     + sha256 at target sizes 4, 16, 64, 256 KiB, over 256 MiB (--quick 32 MiB; --full as default) of PRNG data
 *     fed in 1 MiB blocks. Only the chunker and hash are timed (data generation is not). The
 *     baseline is sha256 of the same stream in 1 MiB updates: the ceiling any chunker meets.
 * (b) delta efficiency on a 128 MiB (--quick 32 MiB) file: bytes of chunks that are new after
 *     (i) a 64 KiB in-place rewrite at a 4 KiB-aligned offset that is not 8 KiB-aligned (so not
 *     chunk-aligned for chunks of 8 KiB or more; at 4 KiB every 4 KiB offset is chunk-aligned),
 *     (ii) inserting 100 bytes in the middle. Computed by chunking the whole modified file and
 *     comparing hash sets; also the mean over random offsets, computed by re-chunking only from
 *     the chunk boundary before the change until boundaries line up again (exact for a chunker
 *     that restarts at each cut: checked against the whole-file result for (i) and (ii)).
 * (c) size of the chunk list of one 128 MiB file at each size and method.
 */
import { prngStream } from './data.js'
import { ChunkSink, makeCutter, type Method } from './cdc.js'
import { KiB, MiB, Samples, fmt, fmtBytes, mbps, now, ratio, selfCpuSeconds, type Suite, type SuiteContext } from './lib.js'
import { loadavg } from 'node:os'
import { createHash } from 'node:crypto'

const TARGETS = [4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB]
const METHODS: Method[] = ['fixed', 'cdc']
const DATA_SEED = 7
const REWRITE_SEED = 8
const INSERT_SEED = 9
const REWRITE_BYTES = 64 * KiB
const INSERT_BYTES = 100
const HASH_BYTES = 32
/** CDC chunk lists also need each chunk's length (Range reads cannot compute offsets). */
const CDC_LENGTH_BYTES = 4

// ---- (a) throughput ----

interface Rate { wall: number, cpu: number }

/**
 * MB/s of `push` over `total` PRNG bytes, timing only push/end (not data generation): by the
 * wall clock, and per CPU second of this process (which other load on the machine moves less).
 */
function timeOver (total: number, push: (b: Buffer) => void, end: () => void): Rate {
  let ms = 0
  let cpu = 0
  const time = (fn: () => void): void => {
    const c0 = selfCpuSeconds()
    const t0 = now()
    fn()
    ms += now() - t0
    cpu += selfCpuSeconds() - c0
  }
  for (const block of prngStream(DATA_SEED, 0, total)) time(() => { push(block) })
  time(end)
  return { wall: mbps(total, ms / 1000), cpu: mbps(total, cpu) }
}

function throughput (ctx: SuiteContext): void {
  let total = ctx.pick({ quick: 32 * MiB, standard: 256 * MiB, full: 256 * MiB })
  const s = new Samples()
  const means = new Map<string, number>()
  interface Config { key: string, run: () => Rate }
  const configs: Config[] = [{
    key: 'sha256',
    run: () => {
      const h = createHash('sha256')
      return timeOver(total, b => { h.update(b) }, () => { h.digest() })
    }
  }]
  for (const method of METHODS) {
    for (const target of TARGETS) {
      for (const hashing of method === 'cdc' ? [true, false] : [true]) {
        const key = `${method} ${target}${hashing ? '' : ' cut-only'}`
        configs.push({
          key,
          run: () => {
            const sink = new ChunkSink(makeCutter(method, target), () => {}, hashing)
            const r = timeOver(total, b => { sink.push(b) }, () => { sink.end() })
            means.set(`${method} ${target}`, sink.bytes / sink.chunks)
            return r
          }
        })
      }
    }
  }
  // Warm-up: one untimed pass of every config over a little data (JIT, caches, clock speed).
  const full = total
  total = 16 * MiB
  for (const c of configs) c.run()
  total = full
  for (let rep = 0; rep < ctx.flags.reps; rep++) {
    for (const c of configs) {
      const r = c.run()
      s.add(c.key, r.wall)
      s.add(`${c.key} cpu`, r.cpu)
    }
    ctx.log(`  rep ${rep + 1}/${ctx.flags.reps}: ${configs.map(c => `${c.key} ${fmt(s.all(c.key)[rep], 0)}`).join(', ')} MB/s (load ${loadavg()[0].toFixed(1)})`)
  }
  const runs = (k: string): string => s.all(k).map(x => fmt(x, 0)).join(' / ')
  const row = (label: string, target: string, mean: string, k: string): Array<string | number> => [
    label, target, mean, fmt(s.med(k), 0), ratio(s.med(k), s.med('sha256')), fmt(s.med(`${k} cpu`), 0), ratio(s.med(`${k} cpu`), s.med('sha256 cpu')), runs(k)
  ]
  const rows: Array<Array<string | number>> = [row('sha256 only, 1 MiB updates (baseline)', '-', '-', 'sha256')]
  for (const method of METHODS) {
    for (const target of TARGETS) {
      const k = `${method} ${target}`
      rows.push(row(`${method} + sha256 per chunk`, fmtBytes(target), fmtBytes(means.get(k)!), k))
    }
  }
  for (const target of TARGETS) {
    rows.push(row('cdc cut points only (no hash)', fmtBytes(target), fmtBytes(means.get(`cdc ${target}`)!), `cdc ${target} cut-only`))
  }
  ctx.table({
    title: `chunking (a): throughput over ${fmtBytes(total)} of random data, one thread (median of ${ctx.flags.reps})`,
    columns: ['method', 'target', 'mean chunk', 'MB/s', 'vs sha256', 'MB per CPU s', 'vs sha256', 'runs (MB/s)'],
    rows,
    notes: [
      'CDC = FastCDC gear hash, min target/4, max 4 x target, normalised (NC 2). Timed: chunker + sha256 only, not data generation.',
      'MB/s by the wall clock; MB per CPU s by this process\'s CPU time over the same spans (less moved by other load).'
    ]
  })
}

// ---- (b) delta efficiency, (c) list size ----

/** A change to the original file: `removed` bytes at `at` replaced by `inserted` PRNG bytes of `seed`. */
interface Change { at: number, removed: number, inserted: number, seed: number }

/** The modified file's bytes from `from` to its end. */
function * modified (size: number, ch: Change, from: number, piece = MiB): Generator<Buffer> {
  const segs = [
    { pos: 0, len: ch.at, seed: DATA_SEED, src: 0 },
    { pos: ch.at, len: ch.inserted, seed: ch.seed, src: 0 },
    { pos: ch.at + ch.inserted, len: size - ch.at - ch.removed, seed: DATA_SEED, src: ch.at + ch.removed }
  ]
  for (const seg of segs) {
    const skip = Math.max(0, from - seg.pos)
    if (skip >= seg.len) continue
    yield * prngStream(seg.seed, seg.src + skip, seg.len - skip, piece)
  }
}

interface Original {
  hashes: Set<string>
  /** Chunk start offsets, ascending. */
  starts: number[]
  ends: Set<number>
  chunks: number
}

function chunkOriginal (size: number, method: Method, target: number): Original {
  const o: Original = { hashes: new Set(), starts: [], ends: new Set(), chunks: 0 }
  let pos = 0
  const sink = new ChunkSink(makeCutter(method, target), (h, len) => {
    o.hashes.add(h!.toString('hex'))
    o.starts.push(pos)
    pos += len
    o.ends.add(pos)
  })
  for (const b of prngStream(DATA_SEED, 0, size)) sink.push(b)
  sink.end()
  o.chunks = sink.chunks
  return o
}

/** Bytes of chunks of the modified file that the original does not have: whole-file method. */
function deltaFull (size: number, o: Original, method: Method, target: number, ch: Change): number {
  let changed = 0
  const sink = new ChunkSink(makeCutter(method, target), (h, len) => { if (!o.hashes.has(h!.toString('hex'))) changed += len })
  for (const b of modified(size, ch, 0)) sink.push(b)
  sink.end()
  return changed
}

/** The same, re-chunking only from the chunk start before the change until cuts line up again. */
function deltaWindow (size: number, o: Original, method: Method, target: number, ch: Change): number {
  let lo = 0
  let hi = o.starts.length - 1
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (o.starts[mid] <= ch.at) lo = mid; else hi = mid - 1 }
  const shift = ch.inserted - ch.removed
  const changeEnd = ch.at + ch.inserted
  let pos = o.starts[lo]
  let changed = 0
  let done = false
  const sink = new ChunkSink(makeCutter(method, target), (h, len) => {
    if (done) return
    if (!o.hashes.has(h!.toString('hex'))) changed += len
    pos += len
    // Past the change, a cut where the original also cut: everything after is the same.
    if (pos >= changeEnd && o.ends.has(pos - shift)) done = true
  })
  for (const b of modified(size, ch, pos, 128 * KiB)) {
    sink.push(b)
    if (done) break
  }
  if (!done) sink.end()
  return changed
}

/** Mean of floor(at / c) * c over every integer at in 0..size (size a multiple of c). */
function meanChunkStartBelow (size: number, c: number): number {
  const n = size / c // full chunks; each start k*c is taken by c values of at, plus at = size itself
  return (c * c * (n * (n - 1)) / 2 + size) / (size + 1)
}

/** Seeded uniform integers in [0, n). */
function rng (seed: number): (n: number) => number {
  let a = seed >>> 0
  return (n) => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
}

function delta (ctx: SuiteContext): void {
  const size = ctx.pick({ quick: 32 * MiB, standard: 128 * MiB, full: 128 * MiB })
  const trials = ctx.pick({ quick: 50, standard: 500, full: 500 })
  // 4 KiB-aligned, not 8 KiB-aligned: inside a chunk for every chunk size above 4 KiB.
  const rewriteAt = Math.floor(size * 0.37 / 8192) * 8192 + 4096
  const rewrite: Change = { at: rewriteAt, removed: REWRITE_BYTES, inserted: REWRITE_BYTES, seed: REWRITE_SEED }
  const insert: Change = { at: size / 2, removed: 0, inserted: INSERT_BYTES, seed: INSERT_SEED }
  const rows: Array<Array<string | number>> = []
  const listRows: Array<Array<string | number>> = []
  for (const method of METHODS) {
    for (const target of TARGETS) {
      const t0 = now()
      const o = chunkOriginal(size, method, target)
      const r1 = deltaFull(size, o, method, target, rewrite)
      const r2 = deltaFull(size, o, method, target, insert)
      const w1 = deltaWindow(size, o, method, target, rewrite)
      const w2 = method === 'fixed' ? size + INSERT_BYTES - Math.floor(insert.at / target) * target : deltaWindow(size, o, method, target, insert)
      if (w1 !== r1 || w2 !== r2) throw new Error(`windowed delta disagrees with whole-file delta for ${method} ${target}: ${w1}/${r1}, ${w2}/${r2}`)
      const rand = rng(target + (method === 'cdc' ? 1 : 0))
      let mRewrite: number
      let mInsert: number
      if (method === 'cdc') {
        let sumRewrite = 0
        let sumInsert = 0
        for (let t = 0; t < trials; t++) {
          sumRewrite += deltaWindow(size, o, method, target, { ...rewrite, at: rand((size - REWRITE_BYTES) / 4096 + 1) * 4096 })
          sumInsert += deltaWindow(size, o, method, target, { ...insert, at: rand(size + 1) })
        }
        mRewrite = sumRewrite / trials
        mInsert = sumInsert / trials
      } else {
        // Fixed-size chunks: the delta is arithmetic, so the means are exact over every offset
        // (checked against the measured delta at a sample of offsets).
        const rewriteBytes = (at: number): number => (Math.floor((at + REWRITE_BYTES - 1) / target) - Math.floor(at / target) + 1) * target
        for (let t = 0; t < 20; t++) {
          const at = rand((size - REWRITE_BYTES) / 4096 + 1) * 4096
          const measured = deltaWindow(size, o, method, target, { ...rewrite, at })
          if (measured !== rewriteBytes(at)) throw new Error(`fixed ${target} rewrite at ${at}: measured ${measured}, arithmetic ${rewriteBytes(at)}`)
        }
        let sum = 0
        const positions = (size - REWRITE_BYTES) / 4096 + 1
        for (let k = 0; k < positions; k++) sum += rewriteBytes(k * 4096)
        mRewrite = sum / positions
        // After an insert every chunk from the one holding the insert point to the end changes.
        mInsert = size + INSERT_BYTES - meanChunkStartBelow(size, target)
      }
      const mean = size / o.chunks
      rows.push([method, fmtBytes(target), fmtBytes(mean),
        `${fmtBytes(r1)} (${ratio(r1, REWRITE_BYTES)})`, `${fmtBytes(mRewrite)} (${ratio(mRewrite, REWRITE_BYTES)})`,
        `${fmtBytes(r2)} (${ratio(r2, INSERT_BYTES)})`, `${fmtBytes(mInsert)} (${ratio(mInsert, INSERT_BYTES)})`])
      const per = HASH_BYTES + (method === 'cdc' ? CDC_LENGTH_BYTES : 0)
      listRows.push([method, fmtBytes(target), o.chunks, `${per} B`, fmtBytes(o.chunks * per), `${fmt(100 * o.chunks * per / size, 3)} %`])
      ctx.log(`  ${method} ${fmtBytes(target)}: ${o.chunks} chunks, rewrite ${r1} B, insert ${r2} B (${fmt((now() - t0) / 1000)} s)`)
    }
  }
  ctx.table({
    title: `chunking (b): delta efficiency, ${fmtBytes(size)} file: bytes of new chunks (ratio to the bytes changed)`,
    columns: ['method', 'target', 'mean chunk', `(i) 64 KiB rewrite at ${rewriteAt}`, '(i) mean over 4 KiB-aligned offsets', '(ii) insert 100 B at middle', '(ii) mean over offsets'],
    rows,
    notes: [
      `(i) offset ${rewriteAt} = ${rewriteAt / KiB} KiB is 4 KiB-aligned, not 8 KiB-aligned. Ratios for (ii) are to the 100 inserted bytes.`,
      `Means: fixed-size exact over every offset (arithmetic, checked against measurement at 20 offsets); CDC sampled at ${trials} random offsets (seeded), measured.`
    ]
  })
  ctx.table({
    title: `chunking (c): chunk list of one ${fmtBytes(size)} file`,
    columns: ['method', 'target', 'chunks', 'per chunk', 'list size', 'of file'],
    rows: listRows,
    notes: ['Per chunk: 32 B sha256; CDC also needs a 4 B length per chunk (offsets are not index x size), so Range reads can find a byte.']
  })
}

export const chunking: Suite = {
  name: 'chunking',
  description: 'fixed-size vs content-defined chunking: throughput, delta efficiency, chunk list size',
  run (ctx) {
    throughput(ctx)
    delta(ctx)
    return Promise.resolve()
  }
}
