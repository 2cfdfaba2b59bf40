/**
 * A swarm (issue 19): many in-process nodes on loopback (real libp2p over TCP, each its own
 * store), every node but n1 told only n1 as `--bootstrap`, scripted through the topology API:
 * a volume of random files on a few members, then readers granted read access that each read
 * every file at once (the stampede), every byte checked against its sha256. Measured: a
 * single reader alone first (the baseline of the same run), then the stampede's time and
 * aggregate throughput, the bytes each holder served (the spread), the first-byte latency of
 * on-demand Range reads by one more reader during the stampede, and the process's RSS per
 * node. Topology.close() stops every node and removes the temp dir, whatever happened.
 *
 * Roles, in node order: n1..nM members (M = members), then `solo` (the baseline reader),
 * `probe` (the latency reader), then the readers; nodes past those start and stay idle.
 */
import '../core/polyfill.js'
import { randomBytes } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { Topology } from './topology.js'
import { sha256Hex } from './history.js'
import type { NodeOptions } from '../node/replicant-node.js'

export interface SwarmOptions {
  nodes: number
  /** Members holding the volume (default 3). */
  members?: number
  /** Readers of the stampede (default 80% of the nodes, at most nodes - members - 2). */
  readers?: number
  files?: number
  fileBytes?: number
  /** Files each reader reads at once (default 2). */
  readConcurrency?: number
  dir?: string
  nodeOptions?: Partial<NodeOptions>
  log?: (line: string) => void
  /** Give up after this long (default 9 min): a stall is reported, not waited out. */
  timeoutMs?: number
}

export interface SwarmResult {
  nodes: number
  readers: number
  volumeBytes: number
  startMs: number
  grantMs: number
  soloMs: number
  soloMBps: number
  stampedeMs: number
  /** Readers that held every byte at the end (sha256 checked); less than `readers` only on a timeout. */
  readersDone: number
  aggregateMBps: number
  /** Aggregate throughput over the single reader's. */
  ratio: number
  /** Bytes each node served from the grant to the end of the stampede, by node name (holders that served nothing left out). */
  served: Record<string, number>
  /** The busiest holder's bytes over a fair share (served bytes over every node that holds the volume at the end). */
  busiestOverFair: number
  busiest: string
  firstByteMs: { n: number, p50: number, p99: number }
  rssPerNodeMiB: { started: number, peak: number }
  cpuSeconds: number
  closeMs: number
}

const VOLUME = 'swarm'
const MiB = 1024 * 1024

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

function pct (xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))]
}

function shuffle<T> (xs: T[]): T[] {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

/** Runs one swarm and returns its figures; the swarm is closed before this returns. */
export async function runSwarm (o: SwarmOptions): Promise<SwarmResult> {
  const log = o.log ?? (() => {})
  const nMembers = o.members ?? 3
  const nReaders = Math.max(1, Math.min(o.readers ?? Math.round(o.nodes * 0.8), o.nodes - nMembers - 2))
  if (o.nodes < nMembers + 3) throw new Error(`a swarm needs at least ${nMembers + 3} nodes (members, solo, probe, a reader)`)
  const files = o.files ?? 64
  const fileBytes = o.fileBytes ?? MiB
  const deadline = Date.now() + (o.timeoutMs ?? 9 * 60_000)
  // At the deadline every read in flight is given up, not only the next one (a stalled
  // whole-file read would otherwise hold the run for its own read timeout, file after file).
  const overtime = AbortSignal.timeout(Math.max(0, deadline - Date.now()))
  setMaxListeners(0, overtime) // one listener per read in flight, across all readers
  const rss0 = process.memoryUsage().rss
  const cpu0 = process.cpuUsage()
  let rssPeak = rss0
  const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage().rss) }, 500)
  let t = Date.now()
  // Readers are lazy replicas (no background copy): they hold what they read, and serve it.
  const lazy = (i: number): boolean => i >= nMembers
  const topo = await Topology.start({
    nodes: Array.from({ length: o.nodes }, (_, i) => ({ name: `n${i + 1}`, ...(lazy(i) ? { nodeOptions: { copyConcurrency: 0 } } : {}) })),
    kind: 'in-process', connect: 'bootstrap', startTimeoutMs: 120_000, stopTimeoutMs: 60_000,
    // Every node is on 127.0.0.1: libp2p's 5 inbound connections a second per host would pace the bootstrap.
    nodeOptions: { readTimeoutMs: 60_000, inboundRate: 1000, ...o.nodeOptions },
    ...(o.dir !== undefined ? { dir: o.dir } : {})
  })
  try {
    const startMs = Date.now() - t
    const rssStarted = process.memoryUsage().rss
    log(`${o.nodes} nodes started in ${startMs} ms; RSS ${((rssStarted - rss0) / MiB / o.nodes).toFixed(1)} MiB per node`)
    const names = topo.names()
    const members = names.slice(0, nMembers)
    const [solo, probe] = names.slice(nMembers, nMembers + 2)
    const readers = names.slice(nMembers + 2, nMembers + 2 + nReaders)

    await topo.createVolume(VOLUME, { members }, { timeoutMs: 60_000 })
    const sums = new Map<string, string>()
    for (let i = 0; i < files; i++) {
      const data = randomBytes(fileBytes)
      const path = `/f${String(i).padStart(4, '0')}.bin`
      sums.set(path, sha256Hex(data))
      await topo.write(members[0], VOLUME, path, data)
    }
    await topo.waitForSteady(VOLUME, { timeoutMs: 120_000 })
    const volumeBytes = files * fileBytes
    log(`volume of ${files} x ${fileBytes} B on ${members.join(', ')}, steady`)

    // Served bytes count from the grant on: whatever a reader fetches (with its index pull or
    // on demand) was served by some holder.
    const servedBefore = await servedBy(topo, names)
    t = Date.now()
    // One generation for every reader (a grant each was one change each, every one announced to every reader so far).
    await topo.client(members[0]).grantReaders(VOLUME, [solo, probe, ...readers].map(r => topo.node(r).peerId))
    // Each reader lists every file before the clock starts (it was told and has pulled the index).
    for (const r of [solo, probe, ...readers]) {
      while ((await topo.list(r, VOLUME).catch(() => [])).length < files) {
        if (Date.now() > deadline) throw new Error(`reader ${r} never listed the volume`)
        await sleep(100)
      }
    }
    const grantMs = Date.now() - t
    log(`${readers.length + 2} readers granted and listing the volume in ${grantMs} ms`)

    let readBytes = 0
    const readAll = async (r: string): Promise<boolean> => {
      const order = shuffle([...sums.keys()])
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < order.length && !overtime.aborted) {
          const path = order[next++]
          const bytes = await topo.read(r, VOLUME, path, overtime).catch((err: unknown) => {
            if (overtime.aborted) return undefined
            throw err
          })
          if (bytes === undefined) return
          if (sha256Hex(bytes) !== sums.get(path)) throw new Error(`${r} read ${path} with the wrong sha256`)
          readBytes += bytes.byteLength
        }
      }
      await Promise.all(Array.from({ length: o.readConcurrency ?? 2 }, worker))
      return next >= order.length && !overtime.aborted
    }

    t = Date.now()
    await readAll(solo)
    const soloMs = Date.now() - t
    const soloMBps = volumeBytes / MiB / (soloMs / 1000)
    const soloFetched = (await topo.client(solo).status()).fetched.onDemand
    log(`single reader: ${soloMs} ms, ${soloMBps.toFixed(1)} MiB/s (${soloFetched.requests} want-lists for ${soloFetched.chunksReceived} chunks)`)

    let stampeding = true
    const firstBytes: number[] = []
    const probing = (async () => {
      const paths = [...sums.keys()]
      while (stampeding && Date.now() < deadline) {
        const path = paths[Math.floor(Math.random() * paths.length)]
        const chunk = 64 * 1024
        const at = Math.floor(Math.random() * Math.max(1, Math.floor(fileBytes / chunk))) * chunk
        const t0 = performance.now()
        const res = await topo.client(probe).open(VOLUME, path, { range: `bytes=${at}-${Math.min(fileBytes, at + chunk) - 1}` })
        await new Promise<void>((resolve, reject) => { res.once('data', () => resolve()); res.once('end', () => resolve()); res.once('error', reject) })
        firstBytes.push(performance.now() - t0)
        res.destroy()
        await sleep(50)
      }
    })()
    t = Date.now()
    let done = 0
    // Progress every 10 s: a stall shows as bytes that stop growing, not as a silent wait.
    const before = readBytes
    const progress = setInterval(() => {
      log(`  ${((Date.now() - t) / 1000).toFixed(0)} s: ${done}/${readers.length} readers done, ${((readBytes - before) / MiB).toFixed(1)} of ${(readers.length * volumeBytes / MiB).toFixed(0)} MiB read, RSS ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB`)
    }, 10_000)
    const outcomes = await Promise.allSettled(readers.map(async r => { if (await readAll(r)) done++ }))
    const stampedeMs = Date.now() - t
    clearInterval(progress)
    stampeding = false
    await probing.catch((err: Error) => { log(`probe failed: ${err.message}`) })
    for (const x of outcomes) if (x.status === 'rejected') log(`a reader failed: ${(x.reason as Error).message}`)
    const servedAfter = await servedBy(topo, names)
    const served: Record<string, number> = {}
    for (const n of names) {
      const d = (servedAfter.get(n) ?? 0) - (servedBefore.get(n) ?? 0)
      if (d > 0) served[n] = d
    }
    const total = Object.values(served).reduce((a, b) => a + b, 0)
    const holders = members.length + 2 + readers.length
    const [busiest, most] = Object.entries(served).sort((a, b) => b[1] - a[1])[0] ?? ['none', 0]
    const aggregateMBps = done * volumeBytes / MiB / (stampedeMs / 1000)
    const rssPeakNow = Math.max(rssPeak, process.memoryUsage().rss)
    const cpu = process.cpuUsage(cpu0)
    const result: SwarmResult = {
      nodes: o.nodes,
      readers: readers.length,
      volumeBytes,
      startMs,
      grantMs,
      soloMs,
      soloMBps,
      stampedeMs,
      readersDone: done,
      aggregateMBps,
      ratio: aggregateMBps / soloMBps,
      served,
      busiestOverFair: total > 0 ? most / (total / holders) : 0,
      busiest,
      firstByteMs: { n: firstBytes.length, p50: pct(firstBytes, 50), p99: pct(firstBytes, 99) },
      rssPerNodeMiB: { started: (rssStarted - rss0) / MiB / o.nodes, peak: (rssPeakNow - rss0) / MiB / o.nodes },
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      closeMs: 0
    }
    log(`stampede: ${done}/${readers.length} readers done in ${stampedeMs} ms, ${aggregateMBps.toFixed(1)} MiB/s aggregate (${result.ratio.toFixed(2)}x the single reader); busiest holder ${busiest} ${(result.busiestOverFair).toFixed(2)}x its fair share`)
    t = Date.now()
    await topo.close()
    result.closeMs = Date.now() - t
    return result
  } finally {
    clearInterval(sampler)
    await topo.close()
  }
}

/** Chunk bytes each node has served of the swarm's volume since it started (status `served`). */
async function servedBy (topo: Topology, names: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const n of names) {
    const s = await topo.client(n).status()
    out.set(n, s.served?.[VOLUME]?.bytes ?? 0)
  }
  return out
}
