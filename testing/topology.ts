/**
 * Scripted topologies: N Replicant nodes on loopback, each on its own data dir, as separate
 * processes (the real binary, `replicant start`) or in this process (ReplicantNode.start),
 * with volumes, writes and reads through each node's HTTP API, and faults:
 *
 * - kill(node): SIGKILL (process nodes only); restart(node) brings it back on the same data
 *   dir and, if it can, the same libp2p port. A restarted node is given no --join: it must
 *   find the others by itself from the peers it remembers.
 * - stop(node): a clean shutdown (SIGTERM); its exit code is returned.
 * - partition([a], [b, c]): nodes of different groups refuse each other (connection gater,
 *   both ways, existing connections hung up), through the nodes' fault routes. Nodes named in
 *   no group are not affected. A node restarted during a partition gets its blocks back
 *   before restart() returns; until then the nodes of the other groups keep refusing it.
 *   heal() lifts every block.
 *
 * Every node started is stopped by close() (and SIGKILLed if this process exits first).
 */
import '../core/polyfill.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { openSync, closeSync, writeSync } from 'node:fs'
import { mkdtemp, mkdir, readFile, rm, open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { ReplicantNode, API_FILE, type ApiInfo } from '../node/replicant-node.js'
import { ReplicantClient } from '../api/client.js'
import { loadOrCreateIdentity } from '../node/identity.js'
import { isReplicantError, Codes } from '../core/errors.js'
import { TopologyError } from './topology-error.js'
import type { LinkShape } from '../replication/link-faults.js'
import { sha256Hex, type History, type TreeEntry } from './history.js'
import { toKey, type VersionVector } from '../core/version-vector.js'
import type { FileView } from '../replication/volume-service.js'
import type { WriteMode } from '../core/records.js'

export type NodeKind = 'process' | 'in-process'

export interface NodeSpec {
  name: string
  /** Default: the topology's `kind` ('process'). */
  kind?: NodeKind
  /** libp2p TCP port on 127.0.0.1 (default 0: a free one, then kept across restarts). */
  port?: number
  /** HTTP API port on 127.0.0.1 (default 0: a free one at every start). */
  apiPort?: number
}

export interface TopologyOptions {
  /** A count (nodes n1..nN) or names / specs. */
  nodes: number | Array<string | NodeSpec>
  kind?: NodeKind
  /** Where data dirs (DIR/NAME) and logs (DIR/NAME.log) go. Default: a new temp dir. */
  dir?: string
  /** Keep `dir` at close (default: kept if given, removed if a temp dir). */
  keepDir?: boolean
  /**
   * How nodes find each other at first start (all start at once either way): 'mesh'
   * (default; every node joins every other, and start() waits until all are connected),
   * 'star' (every node joins the first), 'none'.
   */
  connect?: 'star' | 'mesh' | 'none'
  /** The replicant binary (default: dist/bin/replicant.js next to this module). */
  bin?: string
  /** Extra Node.js flags for process nodes. */
  nodeArgs?: string[]
  env?: NodeJS.ProcessEnv
  /** Records every write and delete made through write()/remove(). */
  history?: History
  /** A node that has not answered its API by then has failed to start (default 60 s). */
  startTimeoutMs?: number
  /** A clean stop that takes longer is finished with SIGKILL and reported (default 30 s). */
  stopTimeoutMs?: number
  /** Called for every fault and lifecycle event. */
  onEvent?: (event: TopologyEvent) => void
}

export interface TopologyEvent { at: number, kind: string, node?: string, detail?: string }

export interface ExitInfo { code: number | null, signal: NodeJS.Signals | null, timedOut?: boolean }

export interface VolumeSpec {
  /** Member node names (default: every node). */
  members?: string[]
  writeMode?: WriteMode
  chunkSize?: number
  /** The node that creates it (default: the first member). */
  on?: string
}

export interface WaitOptions {
  /** Nodes to compare (default: every member of the volume). */
  nodes?: string[]
  /** Give up with a TIMEOUT error after this long (default: never; the caller bounds it). */
  timeoutMs?: number
  intervalMs?: number
}

export { TopologyError }

/** dist/bin/replicant.js, next to this module's folder. */
export const DEFAULT_BIN = fileURLToPath(new URL('../bin/replicant.js', import.meta.url))

const NAME_RE = /^[a-z][a-z0-9-]{0,31}$/

// Last resort: children still running when this process exits are killed with it.
const liveChildren = new Set<ChildProcess>()
let exitHook = false
function track (child: ChildProcess): void {
  if (!exitHook) {
    exitHook = true
    process.once('exit', () => { for (const c of liveChildren) { try { c.kill('SIGKILL') } catch {} } })
  }
  liveChildren.add(child)
  child.once('exit', () => liveChildren.delete(child))
}

async function tail (file: string, bytes = 4096): Promise<string> {
  try {
    const fh = await open(file, 'r')
    try {
      const { size } = await fh.stat()
      const start = Math.max(0, size - bytes)
      const buf = Buffer.alloc(size - start)
      await fh.read(buf, 0, buf.byteLength, start)
      return buf.toString('utf8')
    } finally { await fh.close() }
  } catch { return '' }
}

/** A loopback TCP port nothing listens on now. */
async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  server.close()
  await once(server, 'close')
  return port
}

function portOf (multiaddrs: string[]): number | undefined {
  for (const ma of multiaddrs) {
    const m = /\/ip4\/127\.0\.0\.1\/tcp\/(\d+)/.exec(ma)
    if (m !== null) return Number(m[1])
  }
  return undefined
}

/** What a caller sees of one node of a topology. */
export interface TopologyNode {
  readonly name: string
  readonly kind: NodeKind
  readonly dataDir: string
  /** The node's log (stdout and stderr of a process node). */
  readonly logFile: string
  readonly peerId: string
  readonly running: boolean
  /** The HTTP API of the running node (changes at every restart). */
  readonly apiUrl: string
  readonly multiaddrs: string[]
  readonly pid: number | undefined
  /** A client of the running node's HTTP API. */
  readonly client: ReplicantClient
  /** The ReplicantNode object of an in-process node while it runs. */
  readonly instance: ReplicantNode | undefined
  /** How the last run ended (process nodes). */
  readonly lastExit: ExitInfo | undefined
  logTail: (bytes?: number) => Promise<string>
}

class ManagedNode implements TopologyNode {
  peerId = ''
  multiaddrs: string[] = []
  lastExit: ExitInfo | undefined
  instance: ReplicantNode | undefined
  private url: string | undefined
  private child: ChildProcess | undefined
  private exited: Promise<ExitInfo> | undefined
  private port: number
  private readonly apiPort: number
  readonly dataDir: string
  readonly logFile: string

  constructor (readonly name: string, readonly kind: NodeKind, dir: string, spec: NodeSpec, private readonly opts: TopologyOptions) {
    this.dataDir = join(dir, name)
    this.logFile = join(dir, `${name}.log`)
    this.port = spec.port ?? 0
    this.apiPort = spec.apiPort ?? 0
  }

  get running (): boolean { return this.kind === 'process' ? this.child !== undefined : this.instance !== undefined }
  get pid (): number | undefined { return this.kind === 'process' ? this.child?.pid : (this.instance !== undefined ? process.pid : undefined) }

  get apiUrl (): string {
    if (this.url === undefined || !this.running) throw new TopologyError(Codes.NODE_DOWN, `node ${this.name} is not running`, { node: this.name })
    return this.url
  }

  get client (): ReplicantClient { return new ReplicantClient(this.apiUrl) }

  async logTail (bytes = 4096): Promise<string> { return await tail(this.logFile, bytes) }

  /**
   * Creates the data dir and identity and picks the libp2p port (a free one if none was
   * given), so the node's multiaddr is known before it starts. Returns that multiaddr.
   */
  async prepare (): Promise<string> {
    const id = await loadOrCreateIdentity(this.dataDir)
    this.peerId = id.peerId.toString()
    if (this.port === 0) this.port = await freePort()
    return `/ip4/127.0.0.1/tcp/${this.port}/p2p/${this.peerId}`
  }

  async start (join: string[]): Promise<void> {
    if (this.running) throw new TopologyError(Codes.NODE_RUNNING, `node ${this.name} is already running`, { node: this.name })
    try {
      await this.startOnce(join, this.port)
    } catch (err) {
      // The port kept from the last run may have been taken meanwhile: fall back to a free one.
      if (this.port === 0 || !/EADDRINUSE/.test(`${(err as Error).message}`)) throw err
      await this.startOnce(join, 0)
    }
    this.port = portOf(this.multiaddrs) ?? this.port
  }

  private async startOnce (joinAddrs: string[], port: number): Promise<void> {
    const listen = `/ip4/127.0.0.1/tcp/${port}`
    const api = `127.0.0.1:${this.apiPort}`
    if (this.kind === 'in-process') {
      await mkdir(this.dataDir, { recursive: true })
      const node = await ReplicantNode.start({ dataDir: this.dataDir, listen: [listen], api, join: joinAddrs })
      this.instance = node
      this.url = node.apiUrl
      this.peerId = node.peerId
      this.multiaddrs = node.multiaddrs()
      return
    }
    const args = [...(this.opts.nodeArgs ?? []), this.opts.bin ?? DEFAULT_BIN, 'start', '--data', this.dataDir, '--listen', listen, '--api', api,
      ...joinAddrs.flatMap(a => ['--join', a])]
    const fd = openSync(this.logFile, 'a')
    let child: ChildProcess
    try {
      writeSync(fd, `--- ${new Date().toISOString()} start ${this.name} ${listen}\n`)
      child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd], env: this.opts.env ?? process.env })
    } finally { closeSync(fd) }
    track(child)
    const exited = new Promise<ExitInfo>(resolve => child.once('exit', (code, signal) => resolve({ code, signal })))
    let done: ExitInfo | undefined
    void exited.then(e => { done = e })
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 60_000)
    while (true) {
      if (done !== undefined) {
        throw new TopologyError(Codes.START_FAILED, `node ${this.name} exited during start (code ${String(done.code)}, signal ${String(done.signal)}):\n${await this.logTail(2000)}`, { node: this.name })
      }
      const info = await readFile(join(this.dataDir, API_FILE), 'utf8').then(s => JSON.parse(s) as ApiInfo).catch(() => undefined)
      if (info !== undefined && info.pid === child.pid) {
        const status = await new ReplicantClient(info.url).status().catch(() => undefined)
        if (status !== undefined) {
          this.child = child
          this.exited = exited
          this.url = info.url
          this.peerId = status.peerId
          this.multiaddrs = status.multiaddrs
          // Whatever ends the process, the node is down from then on.
          void exited.then(e => {
            if (this.child === child) { this.child = undefined; this.exited = undefined; this.lastExit = e }
          })
          return
        }
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        await exited
        throw new TopologyError(Codes.START_FAILED, `node ${this.name} did not answer on its API within ${this.opts.startTimeoutMs ?? 60_000} ms:\n${await this.logTail(2000)}`, { node: this.name })
      }
      await sleep(50)
    }
  }

  async kill (): Promise<ExitInfo> {
    if (this.kind === 'in-process') throw new TopologyError(Codes.KILL_NEEDS_PROCESS, `node ${this.name} runs in this process: kill -9 needs a process node (use stop)`, { node: this.name })
    const child = this.child
    const exited = this.exited
    if (child === undefined || exited === undefined) throw new TopologyError(Codes.NODE_DOWN, `node ${this.name} is not running`, { node: this.name })
    child.kill('SIGKILL')
    const e = await exited
    this.lastExit = e
    return e
  }

  async stop (): Promise<ExitInfo> {
    if (this.kind === 'in-process') {
      const node = this.instance
      if (node === undefined) throw new TopologyError(Codes.NODE_DOWN, `node ${this.name} is not running`, { node: this.name })
      await node.stop()
      this.instance = undefined
      this.lastExit = { code: 0, signal: null }
      return this.lastExit
    }
    const child = this.child
    const exited = this.exited
    if (child === undefined || exited === undefined) throw new TopologyError(Codes.NODE_DOWN, `node ${this.name} is not running`, { node: this.name })
    child.kill('SIGTERM')
    const timeout = this.opts.stopTimeoutMs ?? 30_000
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<undefined>(resolve => { timer = setTimeout(() => resolve(undefined), timeout) })
    let e = await Promise.race([exited, late])
    clearTimeout(timer)
    if (e === undefined) {
      child.kill('SIGKILL')
      e = { ...(await exited), timedOut: true }
    }
    this.lastExit = e
    return e
  }
}

/** Which failures of a request prove it was not applied. */
export function appliedAfterError (err: unknown): 'no' | 'unknown' {
  // Refused connections never reached a node; a node's own error answer means it did not commit.
  if (isReplicantError(err)) return 'no'
  return 'unknown'
}

export class Topology {
  readonly dir: string
  readonly events: TopologyEvent[] = []
  private readonly byName = new Map<string, ManagedNode>()
  private readonly order: string[] = []
  private readonly volumes = new Map<string, string[]>()
  private groups: string[][] = []
  /** Slow or lossy links in force, per pair of node names (both ends shaped). */
  private readonly shapedLinks = new Map<string, { a: string, b: string, shape: Partial<LinkShape> }>()
  private closing: Promise<Map<string, ExitInfo>> | undefined

  private constructor (dir: string, private readonly removeDir: boolean, private readonly opts: TopologyOptions) {
    this.dir = dir
  }

  /** Starts every node and waits until each answers on its API. */
  static async start (opts: TopologyOptions): Promise<Topology> {
    const specs: NodeSpec[] = typeof opts.nodes === 'number'
      ? Array.from({ length: opts.nodes }, (_, i) => ({ name: `n${i + 1}` }))
      : opts.nodes.map(n => typeof n === 'string' ? { name: n } : n)
    if (specs.length === 0) throw new TopologyError(Codes.BAD_TOPOLOGY, 'a topology needs at least one node')
    const names = new Set<string>()
    for (const s of specs) {
      if (!NAME_RE.test(s.name)) throw new TopologyError(Codes.BAD_TOPOLOGY, `node name '${s.name}' must match ${NAME_RE.source}`)
      if (names.has(s.name)) throw new TopologyError(Codes.BAD_TOPOLOGY, `node name '${s.name}' is used twice`)
      names.add(s.name)
    }
    const dir = opts.dir !== undefined ? resolve(opts.dir) : await mkdtemp(join(tmpdir(), 'replicant-topology-'))
    await mkdir(dir, { recursive: true })
    const topo = new Topology(dir, opts.keepDir === undefined ? opts.dir === undefined : !opts.keepDir, opts)
    for (const s of specs) {
      topo.byName.set(s.name, new ManagedNode(s.name, s.kind ?? opts.kind ?? 'process', dir, s, opts))
      topo.order.push(s.name)
    }
    try {
      const nodes = topo.order.map(n => topo.byName.get(n)!)
      // Identities and ports are fixed before any node starts, so every node can be told every
      // other's multiaddr and all start at once; a join that fails now is redialled by the node.
      const addrs = await Promise.all(nodes.map(async n => await n.prepare()))
      const connect = opts.connect ?? 'mesh'
      await Promise.all(nodes.map(async (n, i) => {
        const join = connect === 'mesh' ? addrs.filter((_, j) => j !== i) : connect === 'star' && i > 0 ? [addrs[0]] : []
        await n.start(join)
      }))
      for (const n of nodes) {
        opts.history?.alias(n.peerId, n.name)
        topo.emit('start', n.name, `${n.peerId} ${n.multiaddrs[0] ?? ''}`)
      }
      if (connect === 'mesh' && nodes.length > 1) {
        await topo.poll('every node connected to every other', { timeoutMs: opts.startTimeoutMs ?? 60_000 }, async () => {
          for (const n of nodes) {
            const { peers } = await n.client.peers()
            const connected = new Set((peers as Array<{ peerId: string, connected: boolean }>).filter(p => p.connected).map(p => p.peerId))
            if (nodes.some(o => o !== n && !connected.has(o.peerId))) return undefined
          }
          return true
        })
      }
    } catch (err) {
      await topo.close().catch(() => {})
      throw err
    }
    return topo
  }

  private emit (kind: string, node?: string, detail?: string): void {
    const e: TopologyEvent = { at: Date.now(), kind, ...(node !== undefined ? { node } : {}), ...(detail !== undefined ? { detail } : {}) }
    this.events.push(e)
    this.opts.onEvent?.(e)
  }

  get history (): History | undefined { return this.opts.history }

  names (): string[] { return [...this.order] }

  get nodes (): TopologyNode[] { return this.order.map(n => this.byName.get(n)!) }

  node (name: string): TopologyNode { return this.managed(name) }

  private managed (name: string): ManagedNode {
    const n = this.byName.get(name)
    if (n === undefined) throw new TopologyError(Codes.UNKNOWN_NODE, `no node named '${name}' in this topology (nodes: ${this.order.join(', ')})`, { node: name })
    return n
  }

  client (name: string): ReplicantClient { return this.managed(name).client }

  /** The node name of a peer id, if it is one of this topology's. */
  nameOf (peerId: string): string | undefined {
    return this.order.find(n => this.byName.get(n)!.peerId === peerId)
  }

  // ---- volumes and files ----

  /**
   * Creates a volume on `spec.on` with the given members and waits until every running member
   * holds it. Members that are down get it when they are next seen.
   */
  async createVolume (name: string, spec: VolumeSpec = {}, wait: WaitOptions = {}): Promise<any> {
    const members = spec.members ?? this.names()
    for (const m of members) this.managed(m)
    const on = spec.on ?? members[0]
    if (!members.includes(on)) throw new TopologyError(Codes.BAD_TOPOLOGY, `volume ${name} is created on ${on}, which is not one of its members`)
    const replicas = members.filter(m => m !== on).map(m => this.managed(m).peerId)
    const vol = await this.client(on).createVolume({ name, replicas, ...(spec.writeMode !== undefined ? { writeMode: spec.writeMode } : {}), ...(spec.chunkSize !== undefined ? { chunkSize: spec.chunkSize } : {}) })
    this.volumes.set(name, [...members])
    this.emit('volume', on, `${name} members ${members.join(',')}`)
    await this.poll(`volume ${name} on every running member`, wait, async () => {
      for (const m of members) {
        const n = this.managed(m)
        if (!n.running) continue
        const { volumes } = await n.client.listVolumes()
        if (!(volumes as Array<{ name: string }>).some(v => v.name === name)) return undefined
      }
      return true
    })
    return vol
  }

  /** Member names of a volume: as created here, or as the first running node that holds it says. */
  async members (volume: string): Promise<string[]> {
    const known = this.volumes.get(volume)
    if (known !== undefined) return known
    for (const n of this.order.map(x => this.byName.get(x)!)) {
      if (!n.running) continue
      const info = await n.client.volumeInfo(volume).catch(() => undefined)
      if (info === undefined) continue
      const names = (info.members as string[]).map(p => this.nameOf(p)).filter((x): x is string => x !== undefined)
      this.volumes.set(volume, names)
      return names
    }
    throw new TopologyError(Codes.VOLUME_NOT_FOUND, `no running node holds volume ${volume}`)
  }

  /** Writes `data` at `path` on `node`; resolves once the node acknowledged it (durable there). */
  async write (node: string, volume: string, path: string, data: Uint8Array | string, opts: { mode?: number, mtime?: number } = {}): Promise<FileView> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data
    const op = this.opts.history?.begin('put', volume, path, node, bytes)
    try {
      const view = await this.client(node).put(volume, path, Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]), { size: bytes.byteLength, ...opts }) as FileView
      if (op !== undefined) this.opts.history!.ack(op, view.version)
      return view
    } catch (err) {
      if (op !== undefined) this.opts.history!.fail(op, err, appliedAfterError(err))
      throw err
    }
  }

  /** Deletes `path` on `node` (a tombstone that replicates). */
  async remove (node: string, volume: string, path: string): Promise<{ path: string, version?: VersionVector }> {
    const op = this.opts.history?.begin('delete', volume, path, node)
    try {
      const r = await this.client(node).remove(volume, path)
      if (op !== undefined) this.opts.history!.ack(op, r.version)
      return r
    } catch (err) {
      if (op !== undefined) this.opts.history!.fail(op, err, appliedAfterError(err))
      throw err
    }
  }

  async read (node: string, volume: string, path: string): Promise<Buffer> {
    const res = await this.client(node).open(volume, path)
    const parts: Buffer[] = []
    for await (const p of res) parts.push(p as Buffer)
    return Buffer.concat(parts)
  }

  async list (node: string, volume: string, prefix?: string): Promise<FileView[]> {
    return (await this.client(node).list(volume, prefix)).files as FileView[]
  }

  /** The node's tree of `volume` with the sha256 of every file's bytes, read back through the API. */
  async tree (node: string, volume: string): Promise<TreeEntry[]> {
    const out: TreeEntry[] = []
    for (const f of await this.list(node, volume)) {
      out.push({ path: f.path, size: f.size, version: f.version, sha256: sha256Hex(await this.read(node, volume, f.path)) })
    }
    return out
  }

  // ---- faults ----

  /** SIGKILL: the node gets no chance to close anything. */
  async kill (name: string): Promise<ExitInfo> {
    const e = await this.managed(name).kill()
    this.emit('kill', name, `signal ${String(e.signal)}`)
    return e
  }

  /** A clean stop (SIGTERM; the node closes its store). */
  async stop (name: string): Promise<ExitInfo> {
    const e = await this.managed(name).stop()
    this.emit('stop', name, `code ${String(e.code)}${e.timedOut === true ? ' (timed out, killed)' : ''}`)
    return e
  }

  /**
   * Starts the node again on its data dir (stopping it cleanly first if it runs), with no
   * --join: it redials the peers it remembers. Its partition blocks are applied again.
   */
  async restart (name: string): Promise<void> {
    const n = this.managed(name)
    if (n.running) await this.stop(name)
    await n.start([])
    const blocked = this.blockedFor(name)
    if (blocked.length > 0) await n.client.block(blocked)
    for (const { a, b, shape } of this.shapedLinks.values()) {
      if (a === name || b === name) await n.client.slowLink([this.managed(a === name ? b : a).peerId], shape)
    }
    this.emit('restart', name, `${n.multiaddrs[0] ?? ''}${blocked.length > 0 ? ` (blocking ${blocked.length})` : ''}`)
  }

  /** Peer ids `name` must refuse under the current partition. */
  private blockedFor (name: string): string[] {
    const mine = this.groups.find(g => g.includes(name))
    if (mine === undefined) return []
    return this.groups.filter(g => g !== mine).flat().map(n => this.managed(n).peerId)
  }

  /**
   * Cuts the groups off from each other (replacing any partition in force): every running
   * node of a group refuses the nodes of the other groups, both ways.
   */
  async partition (...groups: string[][]): Promise<void> {
    const seen = new Set<string>()
    for (const g of groups) {
      for (const n of g) {
        this.managed(n)
        if (seen.has(n)) throw new TopologyError(Codes.BAD_TOPOLOGY, `node ${n} is in two groups of a partition`)
        seen.add(n)
      }
    }
    const before = new Map(this.order.map(n => [n, this.blockedFor(n)]))
    this.groups = groups.filter(g => g.length > 0).map(g => [...g])
    const running = this.order.map(n => this.byName.get(n)!).filter(n => n.running)
    // Block first, then lift what the new partition no longer blocks: no window in between.
    await Promise.all(running.map(async n => {
      const want = this.blockedFor(n.name)
      if (want.length > 0) await n.client.block(want)
    }))
    await Promise.all(running.map(async n => {
      const want = new Set(this.blockedFor(n.name))
      const lift = (before.get(n.name) ?? []).filter(p => !want.has(p))
      if (lift.length > 0) await n.client.unblock(lift)
    }))
    this.emit('partition', undefined, this.groups.map(g => `[${g.join(',')}]`).join(' '))
  }

  /** Lifts every block on every running node; they reconnect by themselves. */
  async heal (): Promise<void> {
    this.groups = []
    await Promise.all(this.order.map(n => this.byName.get(n)!).filter(n => n.running).map(async n => { await n.client.unblock() }))
    this.emit('heal')
  }

  /** The partition in force (groups of node names; empty when healed). */
  partitions (): string[][] { return this.groups.map(g => [...g]) }

  /**
   * Makes the link between `a` and `b` slow or lossy, both ways: each node's replies to the
   * other (index pages, chunk frames) wait `delayMs`, share `bytesPerSecond`, and are lost
   * (their stream reset) with chance `dropRate`. Simulated inside the nodes (libp2p's TCP
   * transport has no hook for it); kept across restarts until fixLinks().
   */
  async slowLink (a: string, b: string, shape: Partial<LinkShape>): Promise<void> {
    const [na, nb] = [this.managed(a), this.managed(b)]
    if (a === b) throw new TopologyError(Codes.BAD_TOPOLOGY, 'a link joins two different nodes')
    this.shapedLinks.set([a, b].sort().join('\0'), { a, b, shape: { ...shape } })
    await Promise.all([[na, nb], [nb, na]].filter(([n]) => n.running).map(async ([n, other]) => { await n.client.slowLink([other.peerId], shape) }))
    this.emit('slow-link', undefined, `${a}<->${b} ${JSON.stringify(shape)}`)
  }

  /** Restores every link on every running node. */
  async fixLinks (): Promise<void> {
    this.shapedLinks.clear()
    await Promise.all(this.order.map(n => this.byName.get(n)!).filter(n => n.running).map(async n => { await n.client.fixLinks() }))
    this.emit('fix-links')
  }

  // ---- waiting ----

  private async poll<V> (what: string, opts: WaitOptions, fn: () => Promise<V | undefined>, describeLast?: () => string): Promise<V> {
    const deadline = opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : Infinity
    while (true) {
      const v = await fn().catch(() => undefined)
      if (v !== undefined) return v
      if (Date.now() > deadline) {
        throw new TopologyError(Codes.TIMEOUT, `timed out after ${opts.timeoutMs} ms waiting for ${what}${describeLast !== undefined ? `: ${describeLast()}` : ''}`)
      }
      await sleep(opts.intervalMs ?? 100)
    }
  }

  private async waitNodes (volume: string, opts: WaitOptions): Promise<ManagedNode[]> {
    const names = opts.nodes ?? await this.members(volume)
    return names.map(n => this.managed(n))
  }

  /**
   * Waits until the given nodes (default: every running member) list the same tree of
   * `volume`: paths, sizes and versions. Returns that listing.
   */
  async waitForConvergence (volume: string, opts: WaitOptions = {}): Promise<FileView[]> {
    const nodes = (await this.waitNodes(volume, opts)).filter(n => opts.nodes !== undefined || n.running)
    let last = ''
    return await this.poll(`convergence of ${volume} on ${nodes.map(n => n.name).join(', ')}`, opts, async () => {
      const lists = await Promise.all(nodes.map(async n => await this.list(n.name, volume)))
      const keys = lists.map(l => l.map(f => `${f.path} ${f.size} {${toKey(f.version)}}`).join('\n'))
      last = nodes.map((n, i) => `${n.name}: ${lists[i].length} files`).join(', ')
      return keys.every(k => k === keys[0]) ? lists[0] : undefined
    }, () => last)
  }

  /**
   * Waits until every member (all must be running) holds `volume` in state `steady`, lacks
   * nothing, is connected to every other member and has applied each one's change log up to
   * the head it last heard, and all list the same tree; twice in a row. Returns the listing.
   */
  async waitForSteady (volume: string, opts: WaitOptions = {}): Promise<FileView[]> {
    const nodes = await this.waitNodes(volume, opts)
    const down = nodes.filter(n => !n.running).map(n => n.name)
    if (down.length > 0) throw new TopologyError(Codes.NODE_DOWN, `waitForSteady(${volume}) needs every member running; down: ${down.join(', ')}`)
    let last = ''
    let streak = 0
    return await this.poll(`steady state of ${volume} on ${nodes.map(n => n.name).join(', ')}`, opts, async () => {
      const notes: string[] = []
      for (const n of nodes) {
        const info = await n.client.volumeInfo(volume).catch((err: Error) => { notes.push(`${n.name}: ${err.message}`); return undefined })
        if (info === undefined) continue
        if (info.state !== 'steady') notes.push(`${n.name}: state ${String(info.state)}`)
        if (info.lacking?.files > 0 || info.lacking?.bytes > 0) notes.push(`${n.name}: lacking ${String(info.lacking.files)} files`)
        for (const m of info.memberStates as Array<{ peerId: string, self: boolean, connected: boolean, seq: number | null, watermark: number | null }>) {
          if (m.self) continue
          const who = this.nameOf(m.peerId) ?? m.peerId
          if (!m.connected) notes.push(`${n.name}: not connected to ${who}`)
          else if (m.seq === null || m.watermark === null || m.watermark < m.seq) notes.push(`${n.name}: applied ${who} to ${String(m.watermark)} of ${String(m.seq)}`)
        }
      }
      let listing: FileView[] | undefined
      if (notes.length === 0) {
        const lists = await Promise.all(nodes.map(async n => await this.list(n.name, volume)))
        const keys = lists.map(l => l.map(f => `${f.path} ${f.size} {${toKey(f.version)}}`).join('\n'))
        if (keys.every(k => k === keys[0])) listing = lists[0]
        else notes.push(`trees differ (${nodes.map((n, i) => `${n.name}: ${lists[i].length} files`).join(', ')})`)
      }
      last = notes.slice(0, 8).join('; ')
      streak = listing !== undefined ? streak + 1 : 0
      return streak >= 2 ? listing : undefined
    }, () => last)
  }

  // ---- teardown ----

  /**
   * Stops every running node (cleanly; a node that does not stop in time is killed) and
   * removes the topology's temp dir. Idempotent. Returns how each node that ran exited.
   */
  async close (): Promise<Map<string, ExitInfo>> {
    this.closing ??= (async () => {
      const exits = new Map<string, ExitInfo>()
      await Promise.all(this.order.map(n => this.byName.get(n)!).filter(n => n.running).map(async n => {
        try {
          exits.set(n.name, await n.stop())
        } catch (err) {
          exits.set(n.name, { code: null, signal: null })
          this.emit('error', n.name, (err as Error).message)
        }
      }))
      this.emit('close')
      if (this.removeDir) await rm(this.dir, { recursive: true, force: true, maxRetries: 3 })
      return exits
    })()
    return await this.closing
  }
}
