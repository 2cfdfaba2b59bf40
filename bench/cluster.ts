/**
 * Shared plumbing for the replication suites (replication, wannabe, minicopy, write-modes):
 * node processes joined into a cluster on 127.0.0.1, writes through the HTTP API, convergence
 * checks, the same-run baselines (raw loopback TCP and a bare libp2p+noise+yamux stream, each
 * with the receiver in a child process) and --cpu-prof summaries.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { createConnection } from 'node:net'
import { cp, mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { NodeProcess } from './node-proc.js'
import { countedStream } from './data.js'
import { readProfile, summarise } from './profile.js'
export { monotonicMicros } from './profile.js'
import { MiB, fmt, median, now, pool, procMemory, registerCleanup, type SuiteContext } from './lib.js'

export const VOLUME = 'bench'

/** The issues' data set: big files of counted bytes and 16 KiB small files. */
export interface DataSet { bigCount: number, bigSize: number, smallCount: number }

/** The data set at the run's scale: standard and --full are shared by every suite, --quick is the suite's own. */
export function dataSet (ctx: SuiteContext, quick: DataSet): DataSet {
  return ctx.pick<DataSet>({
    quick,
    standard: { bigCount: 4, bigSize: 64 * MiB, smallCount: 2000 },
    full: { bigCount: 8, bigSize: 128 * MiB, smallCount: 10_000 }
  })
}

export interface Cluster { nodes: NodeProcess[], profileDirs: Array<string | undefined> }

/** Starts `n` nodes; every node after the first joins the first. With --profile, each runs under --cpu-prof. */
export async function startCluster (ctx: SuiteContext, label: string, n: number, opts: { profile?: boolean, env?: NodeJS.ProcessEnv } = {}): Promise<Cluster> {
  const nodes: NodeProcess[] = []
  const profileDirs: Array<string | undefined> = []
  for (let i = 0; i < n; i++) {
    const dir = await ctx.tempDir(`${label}-${i}`)
    let nodeArgs: string[] = []
    let pdir: string | undefined
    if (opts.profile === true) {
      pdir = join(dir, 'prof')
      await mkdir(pdir)
      nodeArgs = ['--cpu-prof', `--cpu-prof-dir=${pdir}`]
    }
    const join0 = i === 0 ? [] : ['--join', (await nodes[0].client.status()).multiaddrs[0]]
    nodes.push(await NodeProcess.start({ dataDir: join(dir, 'data'), nodeArgs, startArgs: join0, ...(opts.env !== undefined ? { env: opts.env } : {}) }))
    profileDirs.push(pdir)
  }
  for (const node of nodes.slice(1)) await waitConnected(node, nodes[0].peerId)
  return { nodes, profileDirs }
}

export async function restartNode (node: NodeProcess, join0: string, nodeArgs: string[] = []): Promise<NodeProcess> {
  return await NodeProcess.start({ dataDir: node.dataDir, nodeArgs, startArgs: ['--join', join0] })
}

export async function waitConnected (node: NodeProcess, peer: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const { peers } = await node.client.peers()
    if ((peers as Array<{ peerId: string, connected: boolean }>).some(p => p.peerId === peer && p.connected)) return
    await sleep(50)
  }
  throw new Error(`node ${node.peerId} did not connect to ${peer}`)
}

/** Puts `count` files of `size` bytes named `${prefix}${i}` on `node`, `inFlight` at once. */
export async function putFiles (node: NodeProcess, prefix: string, count: number, size: number, inFlight: number, idBase = 0): Promise<number[]> {
  const lat: number[] = new Array(count)
  await pool(Array.from({ length: count }, (_, i) => i), inFlight, async (i) => {
    const t0 = now()
    await node.client.put(VOLUME, `${prefix}${i}`, Readable.from(countedStream(idBase + i, size)), { size })
    lat[i] = now() - t0
  })
  return lat
}

/**
 * Converged: the node lists `files` live files of the volume, holds every chunk (state steady,
 * nothing lacking) and, if given, its volume seq is at least `seq`. Polls GET /v1/volumes/:vol.
 */
export async function waitConverged (node: NodeProcess, files: number, opts: { timeoutMs?: number, pollMs?: number, bytes?: number } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 600_000)
  let last = ''
  while (Date.now() < deadline) {
    try {
      const info = await node.client.volumeInfo(VOLUME)
      last = `files ${info.files}/${files}, state ${info.state}, lacking ${JSON.stringify(info.lacking)}`
      if (info.files === files && info.state === 'steady' && info.lacking.files === 0 && !info.repairing &&
          (opts.bytes === undefined || info.bytes === opts.bytes)) {
        const list = await node.client.list(VOLUME)
        if ((list.files as unknown[]).length === files) return
      }
    } catch (err) {
      last = (err as Error).message
    }
    await sleep(opts.pollMs ?? 100)
  }
  throw new Error(`node ${node.peerId} did not converge: ${last}`)
}

export async function peakRss (nodes: NodeProcess[]): Promise<string> {
  const out: string[] = []
  for (const n of nodes) out.push(`${fmt((await procMemory(n.pid)).peakRss / MiB, 0)}`)
  return out.join(' / ')
}

export async function fetchedBytes (node: NodeProcess): Promise<{ bytesReceived: number, chunksReceived: number, requests: number }> {
  return (await node.client.status()).fetched ?? { bytesReceived: 0, chunksReceived: 0, requests: 0 }
}

// ---- baselines: the receiver in a child process, the sender here ----

const PEER = fileURLToPath(new URL('./baseline-peer.js', import.meta.url))

async function startPeer (kind: 'tcp' | 'libp2p', bytes: number): Promise<{ addr: string, done: Promise<void>, kill: () => void }> {
  const child = spawn(process.execPath, [PEER, kind, String(bytes)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const unregister = registerCleanup(() => { child.kill('SIGKILL') })
  const addr = await new Promise<string>((resolve, reject) => {
    let buf = ''
    child.stdout.on('data', (b: Buffer) => {
      buf += b.toString()
      const nl = buf.indexOf('\n')
      if (nl >= 0) resolve(buf.slice(0, nl).trim())
    })
    child.once('exit', code => reject(new Error(`baseline peer exited with ${String(code)}`)))
  })
  const done = new Promise<void>(resolve => child.once('exit', () => { unregister(); resolve() }))
  return { addr, done, kill: () => child.kill('SIGKILL') }
}

/** Seconds to send `bytes` over raw loopback TCP in 1 MiB writes, until the receiver has them all. */
export async function tcpBaseline (bytes: number): Promise<number> {
  const peer = await startPeer('tcp', bytes)
  const [host, port] = peer.addr.split(':')
  const block = Buffer.alloc(MiB, 7)
  const sock = createConnection({ host, port: Number(port) })
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject) })
  const t0 = now()
  const acked = new Promise<void>(resolve => sock.once('data', () => resolve()))
  for (let sent = 0; sent < bytes; sent += MiB) {
    if (!sock.write(block)) await new Promise(resolve => sock.once('drain', resolve))
  }
  await acked
  const s = (now() - t0) / 1000
  sock.destroy()
  await peer.done
  return s
}

/** Seconds to send `bytes` over one libp2p 3 stream (noise + yamux, our node config), 1 MiB send()s with 'drain'. */
export async function libp2pBaseline (bytes: number): Promise<number> {
  const { createReplicantLibp2p } = await import('../node/libp2p.js')
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const { multiaddr } = await import('@multiformats/multiaddr')
  const peer = await startPeer('libp2p', bytes)
  const node = await createReplicantLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: [] })
  try {
    const stream = await node.dialProtocol(multiaddr(peer.addr), '/replicant-bench/sink/1.0.0')
    const block = new Uint8Array(MiB).fill(7)
    const t0 = now()
    const it = stream[Symbol.asyncIterator]()
    for (let sent = 0; sent < bytes; sent += MiB) {
      if (!stream.send(block)) await new Promise(resolve => stream.addEventListener('drain', resolve, { once: true }))
    }
    await it.next()
    const s = (now() - t0) / 1000
    await stream.close().catch(() => {})
    await peer.done
    return s
  } finally {
    await node.stop()
    peer.kill()
  }
}

export interface Baselines { tcpMBs: number, libp2pMBs: number }

/** Both baselines over `bytes`, median of `reps`. */
export async function baselines (ctx: SuiteContext, bytes: number, reps: number): Promise<Baselines> {
  const tcp: number[] = []
  const p2p: number[] = []
  for (let r = 0; r < reps; r++) {
    tcp.push(bytes / await tcpBaseline(bytes) / 1e6)
    p2p.push(bytes / await libp2pBaseline(bytes) / 1e6)
  }
  const b = { tcpMBs: median(tcp), libp2pMBs: median(p2p) }
  ctx.log(`baselines over ${fmt(bytes / MiB, 0)} MiB: raw loopback TCP ${fmt(b.tcpMBs)} MB/s, libp2p+noise+yamux one stream ${fmt(b.libp2pMBs)} MB/s (medians of ${reps})`)
  return b
}

/** Prints the top self-time functions and areas of each profiled node (after it stopped). */
export async function printProfiles (ctx: SuiteContext, labels: string[], dirs: Array<string | undefined>, top = 15, window?: { from: number, to: number }): Promise<void> {
  for (let i = 0; i < dirs.length; i++) {
    const dir = dirs[i]
    if (dir === undefined || (await readdir(dir)).length === 0) continue
    // BENCH_KEEP_PROFILES=DIR keeps the raw .cpuprofile files (the temp dirs are removed).
    if (process.env.BENCH_KEEP_PROFILES !== undefined) await cp(dir, join(process.env.BENCH_KEEP_PROFILES, labels[i].split(' ')[0]), { recursive: true })
    const sum = summarise(await readProfile(dir), top, window)
    ctx.table({
      title: `profile of ${labels[i]}${window !== undefined ? ` (${fmt((window.to - window.from) / 1e6)} s window)` : ''}: busy ${fmt(sum.totalMs / 1000)} s, idle ${fmt(sum.idleMs / 1000)} s; top self time by area`,
      columns: ['area', 'ms', '%'],
      rows: sum.areas.map(a => [a.area, fmt(a.ms, 0), fmt(a.pct, 1)])
    })
    ctx.table({
      title: `profile of ${labels[i]}: top self time by function`,
      columns: ['function', 'where', 'ms', '%'],
      rows: sum.functions.map(f => [f.name, f.where, fmt(f.ms, 0), fmt(f.pct, 1)])
    })
  }
}

/** Module-level record of the last full sync measured in this run, for other suites' ratios. */
export const lastFullSync: { mbs?: number, label?: string } = {}
