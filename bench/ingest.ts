/**
 * `npm run bench -- ingest`: getting data into a node, against the tools an operator would use.
 *
 * Small files (10,000 x 16 KiB in 100 directories; --quick: 500), the same source tree each time:
 * - rsync -a --fsync SRC/ DEST/ and cp -r SRC DEST + sync (the baselines; to a fresh local dir),
 * - replicant put VOL SRC /t (one CLI process, start-up included),
 * - tar c -C SRC . | curl -T - .../import (the system tar and curl),
 * - HTTP PUT of each file, 8 in flight, from this process.
 * Large files (1 GiB in 8 files; --quick: 64 MiB), 8 in flight each:
 * - raw write + fsync of the same bytes (read from the page-cached source), and PUT;
 * - raw read + sha256 of those bytes, and GET + sha256 (both warm: nothing drops the page cache).
 * Each replicant figure is on a fresh node (its own process): wall time, the node's CPU seconds
 * (user + system, /proc) and its peak RSS (VmHWM, reset before the phase). Medians of --reps (3).
 */
import { spawn } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { mkdir, open, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { NodeProcess } from './node-proc.js'
import { ensureTool } from './tools.js'
import { monotonicMicros, readProfile, summarise } from './profile.js'
import { KiB, MiB, Samples, fmt, fmtBytes, mbps, pool, procCpuSeconds, range, ratio, resetPeakRss, timed, type Suite, type SuiteContext } from './lib.js'

const BIN = fileURLToPath(new URL('../bin/replicant.js', import.meta.url))
const SMALL_SIZE = 16 * KiB
const BIG_FILES = 8

async function run (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
    let out = ''
    let err = ''
    child.stdout.on('data', (b: Buffer) => { out += b.toString() })
    child.stderr.on('data', (b: Buffer) => { err += b.toString() })
    child.once("close", code => { if (code === 0) resolve(out); else reject(new Error(`${cmd} ${args.join(" ")} exited ${String(code)}: ${err.slice(-2000)}`)) })
  })
}

async function makeSmallTree (dir: string, count: number): Promise<string[]> {
  const rels: string[] = []
  for (const i of range(count)) {
    const sub = `d${String(Math.floor(i / 100)).padStart(3, '0')}`
    if (i % 100 === 0) await mkdir(join(dir, sub), { recursive: true })
    const rel = `${sub}/f${String(i).padStart(5, '0')}.bin`
    await writeFile(join(dir, rel), randomBytes(SMALL_SIZE))
    rels.push(rel)
  }
  return rels
}

async function makeBigFiles (dir: string, total: number): Promise<Array<{ path: string, size: number, hex: string }>> {
  const each = total / BIG_FILES
  const out: Array<{ path: string, size: number, hex: string }> = []
  for (const i of range(BIG_FILES)) {
    const path = join(dir, `big-${i}.bin`)
    const fh = await open(path, 'w')
    const h = createHash('sha256')
    for (let off = 0; off < each; off += 4 * MiB) {
      const b = randomBytes(Math.min(4 * MiB, each - off))
      h.update(b)
      await fh.write(b)
    }
    await fh.close()
    out.push({ path, size: each, hex: h.digest('hex') })
  }
  return out
}

/** sha256 (hex) of a stream of bytes; the wire suite checks what B holds with it too. */
export async function hashOf (source: AsyncIterable<Uint8Array>): Promise<string> {
  const h = createHash('sha256')
  for await (const b of source) h.update(b)
  return h.digest('hex')
}

interface Phase { s: number, cpu?: number, peak?: number }

/** --profile: each node runs under --cpu-prof; the phases measured on it, for the summary at its stop. */
const profiled = new Map<NodeProcess, { dir: string, phases: Array<{ name: string, from: number, to: number }> }>()

/** Times `fn`; with a node, also its CPU seconds and peak RSS over the phase. */
async function measure (node: NodeProcess | undefined, fn: () => Promise<void>, name = ''): Promise<Phase> {
  if (node !== undefined) await resetPeakRss(node.pid)
  const cpu0 = node !== undefined ? await procCpuSeconds(node.pid) : 0
  const from = monotonicMicros()
  const { s } = await timed(fn)
  if (node === undefined) return { s }
  profiled.get(node)?.phases.push({ name, from, to: monotonicMicros() })
  const cpu = await procCpuSeconds(node.pid) - cpu0
  const { peakRss } = await node.memory()
  return { s, cpu, peak: peakRss }
}

async function freshNode (ctx: SuiteContext): Promise<NodeProcess> {
  const dataDir = await ctx.tempDir('ingest-node')
  const profDir = ctx.flag('profile') === true ? await ctx.tempDir('ingest-prof') : undefined
  const node = await NodeProcess.start({ dataDir, nodeArgs: profDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`] })
  if (profDir !== undefined) profiled.set(node, { dir: profDir, phases: [] })
  await node.client.createVolume({ name: 'v' })
  return node
}

/** Stops the node; under --profile, prints where it spent each phase's time. */
async function stopNode (ctx: SuiteContext, node: NodeProcess): Promise<void> {
  await node.stop()
  const prof = profiled.get(node)
  if (prof === undefined) return
  profiled.delete(node)
  const profile = await readProfile(prof.dir)
  for (const ph of prof.phases) {
    const sum = summarise(profile, 25, { from: ph.from, to: ph.to })
    ctx.table({
      title: `profile of the node: ${ph.name} (${fmt((ph.to - ph.from) / 1e6)} s; busy ${fmt(sum.totalMs / 1000)} s, idle ${fmt(sum.idleMs / 1000)} s)`,
      columns: ['self time: function', 'where', 'ms', '% of busy'],
      rows: sum.functions.map(f => [f.name, f.where, fmt(f.ms, 0), fmt(f.pct, 1)])
    })
    ctx.table({ title: `by code area: ${ph.name}`, columns: ['area', 'ms', '% of busy'], rows: sum.areas.map(a => [a.area, fmt(a.ms, 0), fmt(a.pct, 1)]) })
  }
}

const record = (s: Samples, key: string, p: Phase): void => {
  s.add(`${key} s`, p.s)
  if (p.cpu !== undefined) s.add(`${key} cpu`, p.cpu)
  if (p.peak !== undefined) s.add(`${key} peak`, p.peak)
}

async function smallReps (ctx: SuiteContext, s: Samples, src: string, rels: string[], haveRsync: boolean): Promise<void> {
  const work = await ctx.tempDir('ingest-dest')
  for (const rep of range(ctx.flags.reps)) {
    const dest = join(work, `rsync-${rep}`)
    if (haveRsync) {
      record(s, 'rsync', await measure(undefined, async () => { await run('rsync', ['-a', '--fsync', `${src}/`, `${dest}/`]) }))
      await rm(dest, { recursive: true, force: true })
    }
    const cpDest = join(work, `cp-${rep}`)
    record(s, 'cp', await measure(undefined, async () => { await run('cp', ['-r', src, cpDest]); await run('sync', []) }))
    await rm(cpDest, { recursive: true, force: true })

    let node = await freshNode(ctx)
    record(s, 'tree put', await measure(node, async () => { await run(process.execPath, [BIN, '--data', node.dataDir, 'put', 'v', src, '/t']) }, 'tree put'))
    await check(node, '/t/', rels.length)
    await stopNode(ctx, node)

    node = await freshNode(ctx)
    const url = `${node.apiUrl}/v1/volumes/v/import?prefix=/t`
    record(s, 'tar import', await measure(node, async () => {
      await run('bash', ['-c', `set -o pipefail; tar c -C "${src}" . | curl -sS --fail -T - -H "Authorization: Bearer $TOKEN" "${url}" > /dev/null`], { ...process.env, TOKEN: node.apiToken })
    }, 'tar import'))
    await check(node, '/t/', rels.length)
    await stopNode(ctx, node)

    node = await freshNode(ctx)
    const n = node
    record(s, 'http put', await measure(node, async () => {
      await pool(rels, 8, async (rel) => { await n.client.put('v', `/t/${rel}`, createReadStream(join(src, rel)), { size: SMALL_SIZE }) })
    }, 'http put'))
    await check(node, '/t/', rels.length)
    await stopNode(ctx, node)
    ctx.log(`  rep ${rep + 1}/${ctx.flags.reps} small: rsync ${haveRsync ? `${fmt(s.all('rsync s').at(-1)!)} s` : 'missing'}, cp+sync ${fmt(s.all('cp s').at(-1)!)} s, tree put ${fmt(s.all('tree put s').at(-1)!)} s, tar import ${fmt(s.all('tar import s').at(-1)!)} s, http put ${fmt(s.all('http put s').at(-1)!)} s (load ${loadavg()[0].toFixed(1)})`)
  }
}

async function check (node: NodeProcess, prefix: string, count: number): Promise<void> {
  const { files } = await node.client.list('v', prefix)
  if (files.length !== count) throw new Error(`expected ${count} files under ${prefix}, found ${files.length}`)
}

async function bigReps (ctx: SuiteContext, s: Samples, big: Array<{ path: string, size: number, hex: string }>): Promise<void> {
  const work = await ctx.tempDir('ingest-big')
  for (const rep of range(ctx.flags.reps)) {
    const dest = join(work, `raw-${rep}`)
    await mkdir(dest)
    record(s, 'big raw write', await measure(undefined, async () => {
      await pool(big, BIG_FILES, async (f) => {
        const fh = await open(join(dest, `${f.hex}.bin`), 'w')
        try {
          for await (const b of createReadStream(f.path, { highWaterMark: MiB }) as AsyncIterable<Buffer>) await fh.write(b)
          await fh.sync()
        } finally { await fh.close() }
      })
    }))
    record(s, 'big raw read', await measure(undefined, async () => {
      await pool(big, BIG_FILES, async (f) => {
        if (await hashOf(createReadStream(join(dest, `${f.hex}.bin`), { highWaterMark: MiB })) !== f.hex) throw new Error('raw read: wrong bytes')
      })
    }))
    await rm(dest, { recursive: true, force: true })

    const node = await freshNode(ctx)
    record(s, 'big put', await measure(node, async () => {
      await pool(big.map((f, i) => ({ f, i })), BIG_FILES, async ({ f, i }) => { await node.client.put('v', `/big/${i}.bin`, createReadStream(f.path, { highWaterMark: MiB }), { size: f.size }) })
    }, 'big put'))
    record(s, 'big get', await measure(node, async () => {
      await pool(big.map((f, i) => ({ f, i })), BIG_FILES, async ({ f, i }) => {
        if (await hashOf(await node.client.open('v', `/big/${i}.bin`)) !== f.hex) throw new Error('GET: wrong bytes')
      })
    }, 'big get'))
    await stopNode(ctx, node)
    const total = big.reduce((n, f) => n + f.size, 0)
    const last = (k: string): string => fmt(mbps(total, s.all(`${k} s`).at(-1)!), 0)
    ctx.log(`  rep ${rep + 1}/${ctx.flags.reps} large: raw write ${last('big raw write')}, put ${last('big put')}, raw read ${last('big raw read')}, get ${last('big get')} MB/s (load ${loadavg()[0].toFixed(1)})`)
  }
}

async function runIngest (ctx: SuiteContext): Promise<void> {
  const count = ctx.pick({ quick: 500, standard: 10_000, full: 10_000 })
  const bigTotal = ctx.pick({ quick: 64 * MiB, standard: 1024 * MiB, full: 1024 * MiB })
  const workload = ctx.flag('workload')
  const s = new Samples()
  const cell = (key: string, unit: (sec: number) => string, base: string | undefined): Array<string | number> => {
    const sec = s.med(`${key} s`)
    return [unit(sec), base === undefined ? '-' : ratio(s.med(`${base} s`), sec),
      s.has(`${key} cpu`) ? fmt(s.med(`${key} cpu`)) : '-', s.has(`${key} peak`) ? fmtBytes(s.med(`${key} peak`)) : '-']
  }
  if (workload !== 'large') {
    const src = await ctx.tempDir('ingest-src')
    ctx.log(`making ${count} files of 16 KiB...`)
    const rels = await makeSmallTree(src, count)
    await smallReps(ctx, s, src, rels, await ensureTool(ctx, 'rsync', 'rsync'))
    const rate = (sec: number): string => `${fmt(sec)} s (${fmt(count / sec, 0)} files/s)`
    ctx.table({
      title: `ingest: ${count} files of 16 KiB (median of ${ctx.flags.reps}; speed-up over rsync --fsync: >1 is faster)`,
      columns: ['method', 'time', 'vs rsync --fsync', 'node CPU s', 'node peak RSS'],
      rows: [
        ['rsync -a --fsync (baseline)', ...cell('rsync', rate, 'rsync')],
        ['cp -r + sync', ...cell('cp', rate, 'rsync')],
        ['replicant put VOL DIR PATH (one CLI process)', ...cell('tree put', rate, 'rsync')],
        ['tar c | curl -T - .../import', ...cell('tar import', rate, 'rsync')],
        ['HTTP PUT, 8 in flight', ...cell('http put', rate, 'rsync')]
      ],
      notes: ['Goals (issue 15): tree put and import at least 1.5x rsync --fsync; HTTP PUT at least 2,000 files/s. `sync` flushes the whole machine (other work too).']
    })
  }
  if (workload !== 'small') {
    const src = await ctx.tempDir('ingest-big-src')
    ctx.log(`making ${BIG_FILES} files, ${fmtBytes(bigTotal)} in all...`)
    const big = await makeBigFiles(src, bigTotal)
    await bigReps(ctx, s, big)
    const rate = (sec: number): string => `${fmt(sec)} s (${fmt(mbps(bigTotal, sec), 0)} MB/s)`
    ctx.table({
      title: `ingest: ${fmtBytes(bigTotal)} in ${BIG_FILES} files, 8 in flight (median of ${ctx.flags.reps}; ratio to the raw figure of the same direction)`,
      columns: ['method', 'time', 'vs raw', 'node CPU s', 'node peak RSS'],
      rows: [
        ['raw write + fsync (baseline)', ...cell('big raw write', rate, 'big raw write')],
        ['PUT via HTTP (201 = durable)', ...cell('big put', rate, 'big raw write')],
        ['raw read + sha256 (baseline, page cache warm)', ...cell('big raw read', rate, 'big raw read')],
        ['GET via HTTP + sha256', ...cell('big get', rate, 'big raw read')]
      ],
      notes: ['Goals (issue 15): PUT at least 0.8x raw write + fsync, GET at least 0.9x raw read + sha256; node peak RSS under 200 MiB.']
    })
  }
}

export const ingest: Suite = {
  name: 'ingest',
  description: 'getting files in: replicant put DIR, tar import, HTTP PUT vs rsync --fsync and cp -r + sync; 1 GiB PUT/GET vs raw',
  run: runIngest
}
