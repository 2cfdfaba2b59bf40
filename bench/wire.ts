/**
 * wire (issue 16): one source tree on disk (--full: 8 x 128 MiB, and 10,000 x 16 KiB in 100
 * folders), moved to a second peer on loopback by Replicant, Syncthing and rsync, each timed
 * the same way: from B's start to B holding every file, then verified by sha256 of what B holds
 * (untimed). Fresh peers and data dirs for every repetition.
 * - Replicant: A (a node process holding the tree in volume `bench`) runs; the clock starts
 *   with B's process, B joins A, A adds B as a replica, and stops when B is steady with every file.
 * - Syncthing (Debian package, installed if missing): A shares the tree send-only and has
 *   scanned it; the clock starts with B's process (receive-only) and stops when B's folder is
 *   idle holding every file. TLS, like Replicant's noise.
 * - rsync: a daemon on A's side, `rsync -a rsync://...` on B's; no encryption (a floor, not a peer).
 * - The bare libp2p+noise+yamux single stream over the large workload's bytes (no start-up).
 * CPU seconds of both peers (A's during the window, B's whole life) and Replicant's peak RSS.
 * The rejoin after a 1% change and the wannabe figures are the minicopy and wannabe suites.
 */
import { spawn } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { mkdir, open, rm, writeFile } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { KiB, MiB, Samples, fmt, fmtBytes, mbps, now, pool, procCpuSeconds, procTreeCpuSeconds, procMemory, range, ratio, registerCleanup, resetPeakRss, type Suite, type SuiteContext } from './lib.js'
import { VOLUME, dataSet, libp2pBaseline, waitConnected, waitConverged } from './cluster.js'
import { NodeProcess } from './node-proc.js'
import { ensureTool, freePort } from './tools.js'
import * as st from './syncthing.js'
import { hashOf } from './ingest.js'

interface SrcFile { rel: string, size: number, hex: string }
interface Run { s: number, cpu?: number, peak?: number }

const SMALL = 16 * KiB

/** Random files under `dir`: `count` of `size` bytes, 100 to a folder when `foldered`. */
async function makeTree (dir: string, count: number, size: number, foldered: boolean): Promise<SrcFile[]> {
  const out: SrcFile[] = []
  for (const i of range(count)) {
    const sub = foldered ? `d${String(Math.floor(i / 100)).padStart(3, '0')}` : ''
    if (i % 100 === 0) await mkdir(join(dir, sub), { recursive: true })
    const rel = `${sub !== '' ? sub + '/' : ''}f${String(i).padStart(5, '0')}.bin`
    const h = createHash('sha256')
    const fh = await open(join(dir, rel), 'w')
    try {
      for (let off = 0; off < size; off += 4 * MiB) {
        const b = randomBytes(Math.min(4 * MiB, size - off))
        h.update(b)
        await fh.write(b)
      }
    } finally { await fh.close() }
    out.push({ rel, size, hex: h.digest('hex') })
  }
  return out
}

async function verifyDir (dir: string, files: SrcFile[], who: string): Promise<void> {
  await pool(files, 8, async f => {
    if (await hashOf(createReadStream(join(dir, f.rel), { highWaterMark: MiB })) !== f.hex) throw new Error(`${who}: ${f.rel} has the wrong sha256`)
  })
}

async function replicantRun (ctx: SuiteContext, src: string, files: SrcFile[]): Promise<Run> {
  const dirA = await ctx.tempDir('wire-a')
  const dirB = await ctx.tempDir('wire-b')
  const a = await NodeProcess.start({ dataDir: join(dirA, 'data') })
  let b: NodeProcess | undefined
  try {
    await a.client.createVolume({ name: VOLUME })
    await pool(files, 8, async f => { await a.client.put(VOLUME, `/${f.rel}`, createReadStream(join(src, f.rel), { highWaterMark: MiB }), { size: f.size }) })
    const joinAddr = (await a.client.status()).multiaddrs[0]
    await resetPeakRss(a.pid)
    const cpuA0 = await procCpuSeconds(a.pid)
    const t0 = now()
    b = await NodeProcess.start({ dataDir: join(dirB, 'data'), startArgs: ['--join', joinAddr] })
    await waitConnected(a, b.peerId)
    await a.client.addReplica(VOLUME, b.peerId)
    await waitConverged(b, files.length, { pollMs: 50 })
    const s = (now() - t0) / 1000
    const cpu = await procCpuSeconds(a.pid) - cpuA0 + await procCpuSeconds(b.pid)
    const peak = Math.max((await procMemory(a.pid)).peakRss, (await procMemory(b.pid)).peakRss)
    const bn = b
    await pool(files, 8, async f => {
      if (await hashOf(await bn.client.open(VOLUME, `/${f.rel}`)) !== f.hex) throw new Error(`replicant B: ${f.rel} has the wrong sha256`)
    })
    return { s, cpu, peak }
  } finally {
    await b?.stop()
    await a.stop()
    await rm(dirA, { recursive: true, force: true })
    await rm(dirB, { recursive: true, force: true })
  }
}

async function syncthingRun (ctx: SuiteContext, src: string, files: SrcFile[]): Promise<Run> {
  const home = await ctx.tempDir('wire-st')
  const a = await st.makePeer(join(home, 'a'), src)
  const b = await st.makePeer(join(home, 'b'), join(home, 'b-folder'))
  try {
    await st.writeConfig(a, b, 'sendonly')
    await st.writeConfig(b, a, 'receiveonly')
    await st.startPeer(a)
    await st.waitHolds(a, files.length) // A's scan of the tree, before the clock
    const cpuA0 = await procTreeCpuSeconds(a.child!.pid!)
    const t0 = now()
    await st.startPeer(b)
    await st.waitHolds(b, files.length)
    const s = (now() - t0) / 1000
    const cpu = await procTreeCpuSeconds(a.child!.pid!) - cpuA0 + await procTreeCpuSeconds(b.child!.pid!)
    await verifyDir(b.dir, files, 'syncthing B')
    return { s, cpu }
  } finally {
    await st.stopPeer(b)
    await st.stopPeer(a)
    await rm(join(src, '.stfolder'), { recursive: true, force: true })
    await rm(home, { recursive: true, force: true })
  }
}

async function rsyncRun (ctx: SuiteContext, src: string, files: SrcFile[]): Promise<Run> {
  const dir = await ctx.tempDir('wire-rsync')
  const port = await freePort()
  const conf = join(dir, 'rsyncd.conf')
  await writeFile(conf, `use chroot = no\npid file = ${join(dir, 'rsyncd.pid')}\n[w]\n  path = ${src}\n  read only = yes\n  uid = ${process.getuid?.() ?? 0}\n  gid = ${process.getgid?.() ?? 0}\n`)
  const daemon = spawn('rsync', ['--daemon', '--no-detach', '--address=127.0.0.1', `--port=${port}`, `--config=${conf}`], { stdio: 'ignore' })
  const unregister = registerCleanup(() => { daemon.kill('SIGKILL') })
  try {
    for (let i = 0; ; i++) {
      const up = await new Promise<boolean>(resolve => {
        const c = createConnection({ host: '127.0.0.1', port }, () => { c.destroy(); resolve(true) })
        c.once('error', () => { resolve(false) })
      })
      if (up) break
      if (i > 200) throw new Error('rsync daemon did not listen')
      await sleep(25)
    }
    const dest = join(dir, 'dest')
    const t0 = now()
    await new Promise<void>((resolve, reject) => {
      const c = spawn('rsync', ['-a', '--exclude=.stfolder', `rsync://127.0.0.1:${port}/w/`, `${dest}/`], { stdio: ['ignore', 'ignore', 'pipe'] })
      let err = ''
      c.stderr.on('data', (b: Buffer) => { err += b.toString() })
      c.once('close', code => { if (code === 0) resolve(); else reject(new Error(`rsync exited ${String(code)}: ${err}`)) })
    })
    const s = (now() - t0) / 1000
    await verifyDir(dest, files, 'rsync')
    return { s }
  } finally {
    daemon.kill('SIGTERM')
    unregister()
    await rm(dir, { recursive: true, force: true })
  }
}

function record (s: Samples, key: string, r: Run): void {
  s.add(`${key} s`, r.s)
  if (r.cpu !== undefined) s.add(`${key} cpu`, r.cpu)
  if (r.peak !== undefined) s.add(`${key} peak`, r.peak)
}

async function workload (ctx: SuiteContext, name: string, count: number, size: number, tools: { syncthing: boolean, rsync: boolean }): Promise<void> {
  const src = await ctx.tempDir(`wire-src-${name}`)
  const total = count * size
  ctx.log(`wire ${name}: making ${count} files of ${fmtBytes(size)} (${fmtBytes(total)})...`)
  const files = await makeTree(src, count, size, count > 100)
  const s = new Samples()
  for (const rep of range(ctx.flags.reps)) {
    record(s, 'replicant', await replicantRun(ctx, src, files))
    if (tools.syncthing) record(s, 'syncthing', await syncthingRun(ctx, src, files))
    if (tools.rsync) record(s, 'rsync', await rsyncRun(ctx, src, files))
    if (name === 'large') s.add('libp2p s', await libp2pBaseline(total))
    const last = (k: string): string => s.has(`${k} s`) ? `${fmt(s.all(`${k} s`).at(-1)!)} s` : 'missing'
    ctx.log(`  rep ${rep + 1}/${ctx.flags.reps} ${name}: replicant ${last('replicant')}, syncthing ${last('syncthing')}, rsync ${last('rsync')}${name === 'large' ? `, libp2p stream ${last('libp2p')}` : ''} (load ${loadavg()[0].toFixed(1)})`)
  }
  const row = (label: string, key: string): Array<string | number> => {
    if (!s.has(`${key} s`)) return [label, 'missing', '-', '-', '-', '-']
    const sec = s.med(`${key} s`)
    return [label, fmt(sec), fmt(mbps(total, sec)), ratio(sec, s.med('syncthing s')),
      s.has(`${key} cpu`) ? fmt(s.med(`${key} cpu`)) : '-', s.has(`${key} peak`) ? fmtBytes(s.med(`${key} peak`)) : '-']
  }
  const rows = [
    row('Replicant (B joins, add-replica, steady)', 'replicant'),
    row('Syncthing (B starts, folder idle)', 'syncthing'),
    row('rsync daemon, no encryption', 'rsync')
  ]
  if (name === 'large') rows.push(row('libp2p+noise+yamux, one stream, no start-up', 'libp2p'))
  const notes = name === 'large'
    ? [`Replicant's throughput is ${ratio(s.med('libp2p s'), s.med('replicant s'))} of the bare stream's. Goals (issue 16): time at most 1.0x Syncthing's (aim 0.7x), throughput at least 0.8x the bare stream's; peak RSS under 200 MiB.`]
    : ['Goal (issue 16): 10,000 x 16 KiB under 5 s.']
  ctx.table({
    title: `wire ${name}: ${count} x ${fmtBytes(size)} = ${fmtBytes(total)} from A to a new B (median of ${ctx.flags.reps}; time vs Syncthing: <1 is faster)`,
    columns: ['peer', 'time s', 'MB/s', 'vs Syncthing', 'CPU s A+B', 'peak RSS'],
    rows,
    notes
  })
  await rm(src, { recursive: true, force: true })
}

async function run (ctx: SuiteContext): Promise<void> {
  const sz = dataSet(ctx, { bigCount: 2, bigSize: 16 * MiB, smallCount: 300 })
  const tools = { syncthing: await ensureTool(ctx, 'syncthing', 'syncthing'), rsync: await ensureTool(ctx, 'rsync', 'rsync') }
  const only = ctx.flag('workload')
  if (only !== 'small') await workload(ctx, 'large', sz.bigCount, sz.bigSize, tools)
  if (only !== 'large') await workload(ctx, 'small', sz.smallCount, SMALL, tools)
}

export const wire: Suite = {
  name: 'wire',
  description: 'a tree from A to a new B: Replicant vs Syncthing vs rsync (timed from B\'s start, sha256 checked), and the bare libp2p stream',
  run
}
