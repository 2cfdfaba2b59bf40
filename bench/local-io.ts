/**
 * local-io: what one node delivers to a local client through its HTTP API, against what the
 * same machine does with node:fs in the same run.
 *
 * A real node runs as a separate process (the CLI's `start`), on a fresh data dir per workload
 * and repetition. Measured, each as the median of --reps runs:
 * - one large file: PUT, then GET with sha256 verification;
 * - many small files of 16 KiB, 8 requests in flight: PUT, then GET.
 * Sizes: --full 1 GiB and 10,000 files (the brief); default 256 MiB and 2,000 files (the full
 * sizes take ~10 minutes here, mostly the PUTs); --quick 128 MiB and 1,000 files.
 * Baselines, same bytes, same process, same run:
 * - write: node:fs sequential writes of 1 MiB, fsync once at the end (large file); for small
 *   files each file is opened, written, fsynced and closed (durable on completion, the same
 *   contract as a PUT that returned 201), 8 in flight, then one fsync of the directory;
 * - read: node:fs stream (1 MiB reads) / readFile, with the same sha256 verification as GET.
 * What is timed: from the first byte sent to the response (PUT: 201 after the synced index
 * batch; raw write: after fsync); GET and raw read: from the request to the last byte, with
 * sha256 of every byte computed inline by the client in both (so both pay the same hashing
 * cost, ~1.5 GB/s on one core). Expected hashes are computed before the clock starts.
 * Page cache is warm for both reads (the files were just written; caches are not dropped).
 * --chunk-size and --chunk-backend (comma lists) compare node configurations: each runs on its
 * own fresh node in every repetition, in rotating order, against the same baselines.
 * Also recorded per phase: CPU seconds per GB (this process + the node process, from
 * /proc/<pid>/stat; steadier than MB/s when other work loads the machine) and the node's peak
 * RSS (VmHWM, reset through /proc/<pid>/clear_refs before each phase).
 * --profile runs the same workloads once with the node under --cpu-prof and prints where its
 * CPU time goes, counting only samples taken during each phase.
 */
import { open, readFile, rm } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { Readable } from 'node:stream'
import { countedBytes, countedStream, sha256Hex } from './data.js'
import { NodeProcess } from './node-proc.js'
import { Store, type ChunkBackend } from '../store/store.js'
import { monotonicMicros, readProfile, summarise } from './profile.js'
import { KiB, MiB, GiB, Samples, diskUsage, resetPeakRss, procCpuSeconds, selfCpuSeconds, fmt, fmtBytes, mbps, pool, range, ratio, timed, type Suite, type SuiteContext } from './lib.js'

const SMALL_SIZE = 16 * KiB
const IN_FLIGHT = 8
const VOLUME = 'bench'

interface Sizes { big: number, smallCount: number }

function sizes (ctx: SuiteContext): Sizes {
  return ctx.pick<Sizes>({ quick: { big: 128 * MiB, smallCount: 1000 }, standard: { big: 256 * MiB, smallCount: 2000 }, full: { big: GiB, smallCount: 10_000 } })
}

/**
 * One node configuration under test: the volume's chunk size and the store's chunk backend,
 * each the node's default when undefined. --chunk-size and --chunk-backend take comma lists;
 * every combination runs in every repetition, so they are compared under the same conditions.
 */
interface Variant { label: string, chunkSize?: number, backend?: ChunkBackend }

function variants (ctx: SuiteContext): Variant[] {
  const list = (name: string): Array<string | undefined> => {
    const v = ctx.flag(name)
    return typeof v === 'string' ? v.split(',') : [undefined]
  }
  const out: Variant[] = []
  for (const cs of list('chunk-size')) {
    for (const backend of list('chunk-backend')) {
      if (backend !== undefined && backend !== 'pack' && backend !== 'level') throw new Error('--chunk-backend takes pack and/or level')
      const chunkSize = cs === undefined ? undefined : Number(cs)
      const label = [chunkSize !== undefined ? `${fmtBytes(chunkSize)} chunks` : '', backend !== undefined ? `${backend} backend` : ''].filter(x => x !== '').join(', ')
      out.push({ label: label === '' ? 'node defaults' : label, chunkSize, backend })
    }
  }
  return out
}

/**
 * Starts a node on `dataDir`. For a variant with a backend, the store is first created with it
 * (a store keeps the backend it was made with); otherwise the node uses its default.
 */
async function startNode (dataDir: string, variant: Variant, nodeArgs: string[] = []): Promise<NodeProcess> {
  if (variant.backend !== undefined) {
    const store = await Store.open(dataDir, { chunkBackend: variant.backend })
    await store.close()
  }
  return await NodeProcess.start({ dataDir, nodeArgs })
}

async function createVolume (node: NodeProcess, variant: Variant): Promise<number> {
  const vol = await node.client.createVolume({ name: VOLUME, ...(variant.chunkSize !== undefined ? { chunkSize: variant.chunkSize } : {}) })
  return vol.chunkSize
}

// ---- one large file ----

async function rawWriteBig (path: string, id: number, size: number): Promise<void> {
  const fh = await open(path, 'w')
  try {
    for (const block of countedStream(id, size)) await fh.write(block)
    await fh.sync()
  } finally {
    await fh.close()
  }
}

async function hashStream (source: AsyncIterable<Uint8Array>): Promise<{ hex: string, bytes: number }> {
  const h = createHash('sha256')
  let bytes = 0
  for await (const p of source) { h.update(p); bytes += p.byteLength }
  return { hex: h.digest('hex'), bytes }
}

function check (what: string, got: { hex: string, bytes: number }, hex: string, bytes: number): void {
  if (got.hex !== hex || got.bytes !== bytes) throw new Error(`${what}: got ${got.bytes} bytes sha256 ${got.hex}, expected ${bytes} bytes ${hex}`)
}

async function putBig (node: NodeProcess, path: string, id: number, size: number): Promise<void> {
  const rec = await node.client.put(VOLUME, path, Readable.from(countedStream(id, size)), { size })
  if (rec.size !== size) throw new Error(`PUT ${path} stored ${String(rec.size)} bytes, sent ${size}`)
}

async function getBig (node: NodeProcess, path: string, hex: string, size: number): Promise<void> {
  check(`GET ${path}`, await hashStream(await node.client.open(VOLUME, path)), hex, size)
}

// ---- many small files ----

const smallId = (rep: number, i: number): number => 2_000_000 + rep * 100_000 + i
const smallName = (i: number): string => `f${String(i).padStart(6, '0')}`

async function rawWriteSmall (dir: string, rep: number, count: number): Promise<void> {
  await pool(range(count), IN_FLIGHT, async (i) => {
    const fh = await open(join(dir, smallName(i)), 'w')
    try {
      await fh.write(countedBytes(smallId(rep, i), SMALL_SIZE))
      await fh.sync()
    } finally {
      await fh.close()
    }
  })
  const d = await open(dir, 'r')
  try { await d.sync() } finally { await d.close() }
}

async function rawReadSmall (dir: string, expected: string[]): Promise<void> {
  await pool(range(expected.length), IN_FLIGHT, async (i) => {
    const bytes = await readFile(join(dir, smallName(i)))
    check(`read ${smallName(i)}`, { hex: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.byteLength }, expected[i], SMALL_SIZE)
  })
}

async function putSmall (node: NodeProcess, rep: number, count: number): Promise<void> {
  await pool(range(count), IN_FLIGHT, async (i) => {
    await node.client.put(VOLUME, `/small/${smallName(i)}`, Readable.from([countedBytes(smallId(rep, i), SMALL_SIZE)]), { size: SMALL_SIZE })
  })
}

async function getSmall (node: NodeProcess, expected: string[]): Promise<void> {
  await pool(range(expected.length), IN_FLIGHT, async (i) => {
    check(`GET /small/${smallName(i)}`, await hashStream(await node.client.open(VOLUME, `/small/${smallName(i)}`)), expected[i], SMALL_SIZE)
  })
}

// ---- the suite ----

const runsOf = (xs: number[]): string => xs.map(x => fmt(x)).join(' / ')

/**
 * Times `fn` and records, under `key`: MB/s (wall clock), CPU seconds per GB used by this
 * process plus the node process (when given), and files/s when `files` is given. CPU time per
 * byte is the figure to trust when other work loads the machine.
 */
async function phase (s: Samples, key: string, bytes: number, node: NodeProcess | undefined, fn: () => Promise<void>, files?: number): Promise<void> {
  const nodeCpu0 = node !== undefined ? await procCpuSeconds(node.pid) : 0
  const cpu0 = selfCpuSeconds()
  const { s: sec } = await timed(fn)
  const selfCpu = selfCpuSeconds() - cpu0
  const nodeCpu = node !== undefined ? await procCpuSeconds(node.pid) - nodeCpu0 : 0
  s.add(`${key} MB/s`, mbps(bytes, sec))
  s.add(`${key} cpu`, (selfCpu + nodeCpu) / (bytes / 1e9))
  if (node !== undefined) s.add(`${key} node cpu`, nodeCpu / (bytes / 1e9))
  if (files !== undefined) s.add(`${key} files/s`, files / sec)
}

function addMemory (s: Samples, key: string, m: { peakRss: number, rssAnon: number, rssFile: number }): void {
  s.add(`${key} rss`, m.peakRss)
  s.add(`${key} anon`, m.rssAnon)
  s.add(`${key} file`, m.rssFile)
}

/** "peak P (at the end: anonymous A + mapped files F)" for the phase `key`. */
function memoryNote (s: Samples, key: string): string {
  return `${fmtBytes(s.med(`${key} rss`))} (at its end: ${fmtBytes(s.med(`${key} anon`))} anonymous + ${fmtBytes(s.med(`${key} file`))} mapped file pages)`
}

/** --workload large|small: run one of the two (default both). */
function selectedWorkloads (ctx: SuiteContext): { large: boolean, small: boolean } {
  const w = ctx.flag('workload')
  if (w === undefined) return { large: true, small: true }
  if (w !== 'large' && w !== 'small') throw new Error('--workload must be large or small')
  return { large: w === 'large', small: w === 'small' }
}

async function measure (ctx: SuiteContext): Promise<void> {
  const { big, smallCount } = sizes(ctx)
  const workloads = selectedWorkloads(ctx)
  const vs = variants(ctx)
  const s = new Samples()
  const chunkSizes = new Map<string, number>()
  let peakResettable = false
  for (let rep = 0; rep < ctx.flags.reps; rep++) {
    // Each repetition starts with another variant, so outside load does not favour one.
    const order = vs.map((_, i) => vs[(i + rep) % vs.length])
    // One large file: raw write, then per variant a fresh node: PUT, GET; then raw read.
    if (workloads.large) {
      const rawDir = await ctx.tempDir('raw')
      const id = 1_000_000 + rep
      const hex = sha256Hex(countedStream(id, big))
      const rawFile = join(rawDir, 'big.bin')
      await phase(s, 'big raw write', big, undefined, async () => { await rawWriteBig(rawFile, id, big) })
      for (const v of order) {
        const dataDir = await ctx.tempDir('node')
        const node = await startNode(dataDir, v)
        chunkSizes.set(v.label, await createVolume(node, v))
        await resetPeakRss(node.pid)
        await phase(s, `big put ${v.label}`, big, node, async () => { await putBig(node, '/big.bin', id, big) })
        addMemory(s, `big put ${v.label}`, await node.memory())
        peakResettable = await resetPeakRss(node.pid)
        await phase(s, `big get ${v.label}`, big, node, async () => { await getBig(node, '/big.bin', hex, big) })
        addMemory(s, `big get ${v.label}`, await node.memory())
        await node.stop()
        s.add(`big store bytes ${v.label}`, (await diskUsage(dataDir)).allocated)
        await rm(dataDir, { recursive: true, force: true })
      }
      await phase(s, 'big raw read', big, undefined, async () => { check('raw read', await hashStream(createReadStream(rawFile, { highWaterMark: MiB })), hex, big) })
      await rm(rawDir, { recursive: true, force: true })
      const last = (k: string): string => fmt(s.all(`${k} MB/s`)[rep])
      ctx.log(`  rep ${rep + 1}/${ctx.flags.reps} large: raw write ${last('big raw write')}, ${vs.map(v => `[${v.label}] put ${last(`big put ${v.label}`)} get ${last(`big get ${v.label}`)}`).join(', ')}, raw read ${last('big raw read')} MB/s (load ${loadavg()[0].toFixed(1)})`)
    }
    // Many small files: the same shape.
    if (workloads.small) {
      const rawDir = await ctx.tempDir('raw-small')
      const expected = range(smallCount).map(i => createHash('sha256').update(countedBytes(smallId(rep, i), SMALL_SIZE)).digest('hex'))
      const bytes = smallCount * SMALL_SIZE
      await phase(s, 'small raw write', bytes, undefined, async () => { await rawWriteSmall(rawDir, rep, smallCount) }, smallCount)
      for (const v of order) {
        const dataDir = await ctx.tempDir('node-small')
        const node = await startNode(dataDir, v)
        chunkSizes.set(v.label, await createVolume(node, v))
        peakResettable = await resetPeakRss(node.pid)
        await phase(s, `small put ${v.label}`, bytes, node, async () => { await putSmall(node, rep, smallCount) }, smallCount)
        addMemory(s, `small put ${v.label}`, await node.memory())
        await resetPeakRss(node.pid)
        await phase(s, `small get ${v.label}`, bytes, node, async () => { await getSmall(node, expected) }, smallCount)
        addMemory(s, `small get ${v.label}`, await node.memory())
        await node.stop()
        s.add(`small store bytes ${v.label}`, (await diskUsage(dataDir)).allocated)
        await rm(dataDir, { recursive: true, force: true })
      }
      await phase(s, 'small raw read', bytes, undefined, async () => { await rawReadSmall(rawDir, expected) }, smallCount)
      await rm(rawDir, { recursive: true, force: true })
      const last = (k: string): string => fmt(s.all(`${k} files/s`)[rep])
      ctx.log(`  rep ${rep + 1}/${ctx.flags.reps} small: raw write ${last('small raw write')}, ${vs.map(v => `[${v.label}] put ${last(`small put ${v.label}`)} get ${last(`small get ${v.label}`)}`).join(', ')}, raw read ${last('small raw read')} files/s (load ${loadavg()[0].toFixed(1)})`)
    }
  }

  const peakNote = peakResettable ? 'reset before each phase' : 'cumulative: could not reset'
  const cs = (v: Variant): string => `${v.label}${v.chunkSize === undefined ? `, ${fmtBytes(chunkSizes.get(v.label) ?? 0)} chunks` : ''}`
  if (workloads.large) {
    const row = (label: string, key: string, base: string): Array<string | number> => [
      label, fmt(s.med(`${key} MB/s`)), ratio(s.med(`${key} MB/s`), s.med(`${base} MB/s`)),
      s.has(`${key} node cpu`) ? fmt(s.med(`${key} node cpu`)) : '-',
      fmt(s.med(`${key} cpu`)), ratio(s.med(`${key} cpu`), s.med(`${base} cpu`)), runsOf(s.all(`${key} MB/s`))
    ]
    ctx.table({
      title: `local-io: one ${fmtBytes(big)} file (median of ${ctx.flags.reps})`,
      columns: ['operation', 'MB/s', 'vs baseline', 'node CPU s/GB', 'all CPU s/GB', 'CPU vs baseline', 'runs (MB/s)'],
      rows: [
        row('raw write, fsync at end (baseline)', 'big raw write', 'big raw write'),
        ...vs.map(v => row(`PUT via HTTP API (201 = durable) [${cs(v)}]`, `big put ${v.label}`, 'big raw write')),
        row('raw read + sha256 (baseline)', 'big raw read', 'big raw read'),
        ...vs.map(v => row(`GET via HTTP API + sha256 [${cs(v)}]`, `big get ${v.label}`, 'big raw read'))
      ],
      notes: [
        'MB/s = 10^6 B/s, wall clock. CPU s/GB: CPU seconds (user + system, all threads) per 10^9 bytes, of the node process, and of node + benchmark process (all CPU; the baselines have only the latter).',
        ...vs.map(v => `[${v.label}] node peak RSS (VmHWM, ${peakNote}): during PUT ${memoryNote(s, `big put ${v.label}`)}, during GET ${memoryNote(s, `big get ${v.label}`)}. Store on disk after the PUT: ${fmtBytes(s.med(`big store bytes ${v.label}`))} for ${fmtBytes(big)} of data.`)
      ]
    })
  }
  if (workloads.small) {
    const row = (label: string, key: string, base: string): Array<string | number> => [
      label, fmt(s.med(`${key} files/s`)), fmt(s.med(`${key} MB/s`)), ratio(s.med(`${key} files/s`), s.med(`${base} files/s`)),
      s.has(`${key} node cpu`) ? fmt(s.med(`${key} node cpu`)) : '-',
      fmt(s.med(`${key} cpu`)), ratio(s.med(`${key} cpu`), s.med(`${base} cpu`)), runsOf(s.all(`${key} files/s`))
    ]
    ctx.table({
      title: `local-io: ${smallCount} files x ${fmtBytes(SMALL_SIZE)}, ${IN_FLIGHT} requests in flight (median of ${ctx.flags.reps})`,
      columns: ['operation', 'files/s', 'MB/s', 'vs baseline', 'node CPU s/GB', 'all CPU s/GB', 'CPU vs baseline', 'runs (files/s)'],
      rows: [
        row('raw write, fsync each file (baseline)', 'small raw write', 'small raw write'),
        ...vs.map(v => row(`PUT via HTTP API (201 = durable) [${cs(v)}]`, `small put ${v.label}`, 'small raw write')),
        row('raw readFile + sha256 (baseline)', 'small raw read', 'small raw read'),
        ...vs.map(v => row(`GET via HTTP API + sha256 [${cs(v)}]`, `small get ${v.label}`, 'small raw read'))
      ],
      notes: vs.map(v => `[${v.label}] node peak RSS (VmHWM, ${peakNote}): during PUTs ${memoryNote(s, `small put ${v.label}`)}, during GETs ${memoryNote(s, `small get ${v.label}`)}. Store on disk: ${fmtBytes(s.med(`small store bytes ${v.label}`))} for ${fmtBytes(smallCount * SMALL_SIZE)} of data.`)
    })
  }
}

/** --profile: no timing table; the node runs with --cpu-prof, one process per phase. */
async function profile (ctx: SuiteContext): Promise<void> {
  const { big, smallCount } = sizes(ctx)
  const dataBig = await ctx.tempDir('prof-node')
  const dataSmall = await ctx.tempDir('prof-node-small')
  const workloads = selectedWorkloads(ctx)
  const [variant] = variants(ctx)
  const hex = workloads.large ? sha256Hex(countedStream(1_000_000, big)) : ''
  const expected = range(workloads.small ? smallCount : 0).map(i => createHash('sha256').update(countedBytes(smallId(0, i), SMALL_SIZE)).digest('hex'))
  const phases: Array<{ name: string, large: boolean, dataDir: string, bytes: number, fn: (n: NodeProcess) => Promise<void> }> = [
    { name: `PUT one ${fmtBytes(big)} file`, large: true, dataDir: dataBig, bytes: big, fn: async (n) => { await createVolume(n, variant); await putBig(n, '/big.bin', 1_000_000, big) } },
    { name: `GET one ${fmtBytes(big)} file`, large: true, dataDir: dataBig, bytes: big, fn: async (n) => { await getBig(n, '/big.bin', hex, big) } },
    { name: `PUT ${smallCount} x 16 KiB`, large: false, dataDir: dataSmall, bytes: smallCount * SMALL_SIZE, fn: async (n) => { await createVolume(n, variant); await putSmall(n, 0, smallCount) } },
    { name: `GET ${smallCount} x 16 KiB`, large: false, dataDir: dataSmall, bytes: smallCount * SMALL_SIZE, fn: async (n) => { await getSmall(n, expected) } }
  ]
  for (const ph of phases.filter(p => p.large ? workloads.large : workloads.small)) {
    const profDir = await ctx.tempDir('prof')
    const node = await startNode(ph.dataDir, variant, ['--cpu-prof', `--cpu-prof-dir=${profDir}`])
    const from = monotonicMicros()
    const { s } = await timed(async () => { await ph.fn(node) })
    const to = monotonicMicros()
    await node.stop()
    const profile = await readProfile(profDir)
    // Only samples taken during the phase (the profile's clock is CLOCK_MONOTONIC, like ours).
    const inWindow = profile.startTime <= from && from - profile.startTime < 600e6
    const sum = summarise(profile, 20, inWindow ? { from, to } : undefined)
    ctx.table({
      title: `profile of the node process [${variant.label}]: ${ph.name} (${fmt(mbps(ph.bytes, s))} MB/s under the profiler; ${inWindow ? 'samples during the phase only' : 'whole process lifetime'}: node busy ${fmt(sum.totalMs / 1000)} s, idle ${fmt(sum.idleMs / 1000)} s of ${fmt(s)} s)`,
      columns: ['self time: function', 'where', 'ms', '% of busy'],
      rows: sum.functions.map(f => [f.name, f.where, fmt(f.ms, 0), fmt(f.pct, 1)])
    })
    ctx.table({
      title: `profile by code area: ${ph.name}`,
      columns: ['area', 'ms', '% of busy'],
      rows: sum.areas.map(a => [a.area, fmt(a.ms, 0), fmt(a.pct, 1)])
    })
  }
}

export const localIo: Suite = {
  name: 'local-io',
  description: 'PUT/GET through the HTTP API of a node process vs raw node:fs (one large file; many 16 KiB files)',
  async run (ctx) {
    if (ctx.flag('profile') === true) await profile(ctx)
    else await measure(ctx)
  }
}
