/**
 * webdav: rclone through the node's WebDAV endpoint (/dav/VOLUME/) against the same data
 * through the HTTP API (the project's client), in the same run, on the same machine.
 *
 * Two sets, as in issue 18: many files of 16 KiB (--full 10,000; default 2,000; --quick 500)
 * and one size in 8 files (--full 1 GiB; default 256 MiB; --quick 64 MiB). Each set is written
 * once to a local source folder before any clock starts. For each repetition and each way, a
 * fresh node (a child process, the CLI's `start`) on a fresh data dir:
 * - WebDAV: `rclone copy SRC d:set --transfers 8 --checkers 8` in, then `rclone copy d:set OUT`
 *   out, rclone's remote given in environment variables (no config file);
 * - WebDAV with node:http: MKCOL, then PUT and GET of each file, 8 in flight (the server's cost
 *   without rclone's own: rclone 1.60's WebDAV backend spaces the starts of its calls);
 * - HTTP API: the same files read from SRC and PUT, 8 in flight, then GET into OUT, 8 in flight.
 * Both ways read the source from disk and write the copy to disk. Timed: the whole command /
 * loop. CPU seconds: the client (rclone's, from bash's `times`; or this process's) plus the node
 * process (/proc/PID/stat). Node peak RSS: VmHWM, reset before each phase. Medians of --reps.
 * `--workload small|large` runs one set, `--ways webdav,api` some of the ways (at --full, all of
 * it takes longer than one benchmark command may: run it in parts, and read the JSON).
 */
import { mkdir, open, readdir, rm } from 'node:fs/promises'
import { createReadStream, createWriteStream } from 'node:fs'
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { spawn } from 'node:child_process'
import { Agent, request, type IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { countedBytes, countedStream } from './data.js'
import { NodeProcess } from './node-proc.js'
import { KiB, MiB, GiB, Samples, fmt, fmtBytes, pool, procCpuSeconds, procMemory, range, ratio, resetPeakRss, selfCpuSeconds, timed, type Suite, type SuiteContext } from './lib.js'

const VOLUME = 'bench'
const IN_FLIGHT = 8
const SMALL = 16 * KiB

interface DataSet { name: string, dir: string, files: string[], bytes: number, fileSize: number }

async function writeSets (ctx: SuiteContext): Promise<DataSet[]> {
  const { count, big } = ctx.pick({ quick: { count: 500, big: 64 * MiB }, standard: { count: 2000, big: 256 * MiB }, full: { count: 10_000, big: GiB } })
  const workload = ctx.flag('workload')
  if (workload !== undefined && workload !== 'small' && workload !== 'large') throw new Error('--workload is small or large')
  const root = await ctx.tempDir('webdav-src')
  const sets: DataSet[] = []
  const small: DataSet = { name: `${count.toLocaleString('en')} x 16 KiB`, dir: join(root, 'small'), files: [], bytes: 0, fileSize: SMALL }
  for (let d = 0; d < Math.ceil(count / 1000) && workload !== 'large'; d++) await mkdir(join(small.dir, `d${d}`), { recursive: true })
  if (workload !== 'large') await pool(range(count), IN_FLIGHT, async (i) => {
    const rel = `d${Math.floor(i / 1000)}/f${String(i).padStart(5, '0')}`
    const fh = await open(join(small.dir, rel), 'w')
    try { await fh.write(countedBytes(7_000_000 + i, SMALL)) } finally { await fh.close() }
  })
  for (let i = 0; i < count; i++) small.files.push(`d${Math.floor(i / 1000)}/f${String(i).padStart(5, '0')}`)
  small.bytes = count * SMALL
  if (workload !== 'large') sets.push(small)
  if (workload === 'small') return sets
  const large: DataSet = { name: `${fmtBytes(big)} in 8 files`, dir: join(root, 'large'), files: [], bytes: big, fileSize: big / 8 }
  await mkdir(large.dir, { recursive: true })
  for (let i = 0; i < 8; i++) {
    const rel = `part${i}.bin`
    large.files.push(rel)
    const fh = await open(join(large.dir, rel), 'w')
    try { for (const b of countedStream(8_000_000 + i, big / 8)) await fh.write(b) } finally { await fh.close() }
  }
  sets.push(large)
  return sets
}

/** Runs rclone; resolves with its CPU seconds (user + system, from bash's `times`). */
async function rclone (env: NodeJS.ProcessEnv, args: string[]): Promise<number> {
  const script = 'rclone "$@" >/dev/null 2>"$RCLONE_ERR"; rc=$?; times; exit $rc'
  return await new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script, '_', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    let text = ''
    child.stdout.on('data', (b: Buffer) => { text += b.toString() })
    child.once('error', reject)
    child.once('exit', (code) => {
      if (code !== 0) { reject(new Error(`rclone ${args.join(' ')} exited ${code} (stderr in ${env.RCLONE_ERR ?? '?'})`)); return }
      const lines = text.trim().split('\n')
      const secs = [...(lines[1] ?? '').matchAll(/(\d+)m([\d.]+)s/g)].map(m => Number(m[1]) * 60 + Number(m[2]))
      resolve(secs.reduce((a, b) => a + b, 0))
    })
  })
}

function rcloneEnv (dir: string, node: NodeProcess): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    RCLONE_CONFIG: join(dir, 'no-rclone.conf'),
    RCLONE_ERR: join(dir, 'rclone.err'),
    RCLONE_CONFIG_D_TYPE: 'webdav',
    RCLONE_CONFIG_D_URL: `${node.apiUrl}/dav/${VOLUME}`,
    RCLONE_CONFIG_D_VENDOR: 'other',
    RCLONE_CONFIG_D_BEARER_TOKEN: node.apiToken
  }
  return env
}

async function countFiles (dir: string): Promise<number> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter(e => e.isFile()).length
}

type Way = 'webdav' | 'dav-http' | 'api'
const WAYS: Way[] = ['webdav', 'dav-http', 'api']
const CLIENT: Record<Way, string> = { webdav: 'rclone via WebDAV', 'dav-http': 'node:http via WebDAV', api: 'HTTP API client' }

/** One WebDAV request with plain node:http (keep-alive), for the server's cost without rclone's. */
async function davRequest (agent: Agent, node: NodeProcess, method: string, path: string, body?: Readable, size?: number): Promise<IncomingMessage> {
  const u = new URL(node.apiUrl)
  return await new Promise((resolve, reject) => {
    const req = request({ agent, host: u.hostname, port: u.port, method, path: `/dav/${VOLUME}${path}`, headers: { authorization: `Bearer ${node.apiToken}`, ...(size !== undefined ? { 'content-length': size } : {}) } }, (res) => {
      if ((res.statusCode ?? 0) >= 300) { res.resume(); reject(new Error(`${method} ${path}: ${res.statusCode}`)); return }
      resolve(res)
    })
    req.once('error', reject)
    if (body !== undefined) body.pipe(req)
    else req.end()
  })
}

/** One repetition of one set one way: in, then out; samples under `${set} ${way} in|out`. */
async function once (ctx: SuiteContext, s: Samples, set: DataSet, way: Way): Promise<void> {
  const work = await ctx.tempDir(`webdav-${way}`)
  const node = await NodeProcess.start({ dataDir: join(work, 'node') })
  try {
    await node.client.createVolume({ name: VOLUME })
    const out = join(work, 'out')
    const env = rcloneEnv(work, node)
    const phase = async (dir: 'in' | 'out', fn: () => Promise<number>): Promise<void> => {
      await resetPeakRss(node.pid)
      const nodeCpu0 = await procCpuSeconds(node.pid)
      const self0 = selfCpuSeconds()
      const { s: sec, value: clientCpu } = await timed(fn)
      const nodeCpu = await procCpuSeconds(node.pid) - nodeCpu0
      const key = `${set.name} ${way} ${dir}`
      s.add(`${key} s`, sec)
      s.add(`${key} cpu`, nodeCpu + (way === 'webdav' ? clientCpu : selfCpuSeconds() - self0))
      s.add(`${key} rss`, (await procMemory(node.pid)).peakRss)
    }
    if (way === 'dav-http') {
      const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT })
      try {
        await phase('in', async () => {
          await davRequest(agent, node, 'MKCOL', '/set').then(r => r.resume())
          for (const d of new Set(set.files.filter(f => f.includes('/')).map(f => f.slice(0, f.lastIndexOf('/'))))) await davRequest(agent, node, 'MKCOL', `/set/${d}`).then(r => r.resume())
          await pool(set.files, IN_FLIGHT, async (rel) => { (await davRequest(agent, node, 'PUT', `/set/${rel}`, createReadStream(join(set.dir, rel)), set.fileSize)).resume() })
          return 0
        })
        await phase('out', async () => {
          await pool(set.files, IN_FLIGHT, async (rel) => {
            await mkdir(join(out, rel, '..'), { recursive: true })
            await pipeline(await davRequest(agent, node, 'GET', `/set/${rel}`), createWriteStream(join(out, rel)))
          })
          return 0
        })
      } finally { agent.destroy() }
    } else if (way === 'webdav') {
      await phase('in', async () => await rclone(env, ['copy', '--transfers', String(IN_FLIGHT), '--checkers', String(IN_FLIGHT), set.dir, 'd:set']))
      await phase('out', async () => await rclone(env, ['copy', '--transfers', String(IN_FLIGHT), '--checkers', String(IN_FLIGHT), 'd:set', out]))
    } else {
      await phase('in', async () => {
        await pool(set.files, IN_FLIGHT, async (rel) => {
          await node.client.put(VOLUME, `/set/${rel}`, createReadStream(join(set.dir, rel)), { size: set.fileSize })
        })
        return 0
      })
      await phase('out', async () => {
        await pool(set.files, IN_FLIGHT, async (rel) => {
          await mkdir(join(out, rel, '..'), { recursive: true })
          await pipeline(await node.client.open(VOLUME, `/set/${rel}`), createWriteStream(join(out, rel)))
        })
        return 0
      })
    }
    const got = await countFiles(out)
    if (got !== set.files.length) throw new Error(`${way} ${set.name}: ${got} files came out, ${set.files.length} went in`)
  } finally {
    await node.stop()
    await rm(work, { recursive: true, force: true })
  }
}

export const webdav: Suite = {
  name: 'webdav',
  description: 'rclone copy through WebDAV (/dav/VOLUME/) vs the same files through the HTTP API, in and out',
  run: async (ctx) => {
    const sets = await writeSets(ctx)
    const waysFlag = ctx.flag('ways')
    const ways = typeof waysFlag === 'string' ? waysFlag.split(',').map(w => w.trim()) as Way[] : WAYS
    for (const w of ways) if (!WAYS.includes(w)) throw new Error(`--ways: ${w} is none of ${WAYS.join(', ')}`)
    const s = new Samples()
    const load: number[] = []
    for (let rep = 0; rep < ctx.flags.reps; rep++) {
      for (const set of sets) {
        // Alternate which way goes first, so neither always runs on a warmer machine.
        for (const way of rep % 2 === 0 ? ways : [...ways].reverse()) {
          await once(ctx, s, set, way)
          load.push(loadavg()[0])
          ctx.log(`rep ${rep + 1}: ${set.name} ${way} in ${fmt(s.all(`${set.name} ${way} in s`).at(-1)!)} s, out ${fmt(s.all(`${set.name} ${way} out s`).at(-1)!)} s`)
        }
      }
    }
    const rows: Array<Array<string | number>> = []
    for (const set of sets) {
      for (const dir of ['in', 'out']) {
        for (const way of ways) {
          const key = `${set.name} ${way} ${dir}`
          const base = `${set.name} api ${dir}`
          rows.push([set.name, dir, CLIENT[way], fmt(s.med(`${key} s`)), fmt(set.bytes / s.med(`${key} s`) / 1e6),
            ways.includes('api') ? ratio(s.med(`${key} s`), s.med(`${base} s`)) : '-', fmt(s.med(`${key} cpu`)), fmtBytes(s.med(`${key} rss`)),
            s.all(`${key} s`).map(x => fmt(x)).join(' / ')])
        }
      }
    }
    ctx.table({
      title: `WebDAV (rclone, ${IN_FLIGHT} transfers; node:http, ${IN_FLIGHT} in flight) vs HTTP API (${IN_FLIGHT} in flight), median of ${ctx.flags.reps}`,
      columns: ['set', 'way', 'client', 'time s', 'MB/s', 'time vs API', 'CPU s (client + node)', 'node peak RSS', 'runs (s)'],
      rows,
      notes: [`load average (1 min) during the runs: ${load.map(l => l.toFixed(1)).join(', ')}`]
    })
  }
}
