/**
 * One node of a topology and its life: started in this process (ReplicantNode.start) or as a
 * child process (the real binary, `replicant start`), always with testing on so its fault
 * routes answer; stopped cleanly, or killed with SIGKILL (process nodes only).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { openSync, closeSync, writeSync } from 'node:fs'
import { mkdir, readFile, open } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { ReplicantNode, API_FILE, type ApiInfo } from '../node/replicant-node.js'
import { ReplicantClient } from '../api/client.js'
import { readApiToken } from '../api/api-token.js'
import { loadOrCreateIdentity } from '../node/identity.js'
import { Codes } from '../core/errors.js'
import { TopologyError } from './topology-error.js'
import type { ExitInfo, NodeKind, NodeSpec, TopologyNode, TopologyOptions } from './topology-types.js'

/** dist/bin/replicant.js, next to this module's folder. */
export const DEFAULT_BIN = fileURLToPath(new URL('../bin/replicant.js', import.meta.url))

// Last resort: children still running when this process exits are killed with it.
const liveChildren = new Set<ChildProcess>()
let exitHook = false
function track (child: ChildProcess): void {
  if (!exitHook) {
    exitHook = true
    process.once('exit', () => { for (const c of liveChildren) { try { c.kill('SIGKILL') } catch { /* already gone */ } } })
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

/** A loopback TCP port nothing listens on now (it was free a moment ago). */
export async function freePort (): Promise<number> {
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

export class ManagedNode implements TopologyNode {
  peerId = ''
  multiaddrs: string[] = []
  lastExit: ExitInfo | undefined
  instance: ReplicantNode | undefined
  private url: string | undefined
  private token: string | undefined
  private child: ChildProcess | undefined
  private exited: Promise<ExitInfo> | undefined
  private port: number
  private readonly apiPort: number
  private readonly swarmKeyFile: string | undefined
  readonly dataDir: string
  readonly logFile: string

  constructor (readonly name: string, readonly kind: NodeKind, dir: string, private readonly spec: NodeSpec, private readonly opts: TopologyOptions) {
    this.dataDir = join(dir, name)
    this.logFile = join(dir, `${name}.log`)
    this.port = spec.port ?? 0
    this.apiPort = spec.apiPort ?? 0
    this.swarmKeyFile = spec.swarmKeyFile
  }

  get running (): boolean { return this.kind === 'process' ? this.child !== undefined : this.instance !== undefined }
  get pid (): number | undefined { return this.kind === 'process' ? this.child?.pid : (this.instance !== undefined ? process.pid : undefined) }

  get apiUrl (): string {
    if (this.url === undefined || !this.running) throw new TopologyError(Codes.NODE_DOWN, `node ${this.name} is not running`, { node: this.name })
    return this.url
  }

  /** The token the running node's API requires (read from its data dir, or the in-process node's). */
  get apiToken (): string {
    if (this.token === undefined || !this.running) throw new TopologyError(Codes.NODE_DOWN, `node ${this.name} is not running`, { node: this.name })
    return this.token
  }

  get client (): ReplicantClient { return new ReplicantClient(this.apiUrl, { token: this.apiToken }) }

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

  /** `--bootstrap` addresses: given at every start (they are not stored by the node). */
  private bootstrap: string[] = []

  async start (join: string[], bootstrap?: string[]): Promise<void> {
    if (bootstrap !== undefined) this.bootstrap = bootstrap
    if (this.running) throw new TopologyError(Codes.NODE_RUNNING, `node ${this.name} is already running`, { node: this.name })
    try {
      await this.startOnce(join, this.port)
    } catch (err) {
      // The port kept from the last run, or picked free before the start, may have been taken
      // meanwhile (another node's outbound dial takes ephemeral ports): fall back to a free one.
      // The node says so with ADDRESS_IN_USE (in-process) or in its log (a process: START_FAILED).
      const taken = (err as { code?: string }).code === Codes.ADDRESS_IN_USE || /EADDRINUSE|already in use/.test(`${(err as Error).message}`)
      if (this.port === 0 || !taken) throw err
      await this.startOnce(join, 0)
    }
    this.port = portOf(this.multiaddrs) ?? this.port
  }

  private async startOnce (joinAddrs: string[], port: number): Promise<void> {
    const listen = `/ip4/127.0.0.1/tcp/${port}`
    const api = `127.0.0.1:${this.apiPort}`
    if (this.kind === 'in-process') {
      await mkdir(this.dataDir, { recursive: true })
      const node = await ReplicantNode.start({
        ...this.opts.nodeOptions, ...this.spec.nodeOptions, dataDir: this.dataDir, listen: [listen], api, join: joinAddrs, bootstrap: this.bootstrap, testing: true, ...(this.swarmKeyFile !== undefined ? { swarmKeyFile: this.swarmKeyFile } : {})
      })
      this.instance = node
      this.url = node.apiUrl
      this.token = node.apiToken
      this.peerId = node.peerId
      this.multiaddrs = node.multiaddrs()
      return
    }
    const args = [...(this.opts.nodeArgs ?? []), this.opts.bin ?? DEFAULT_BIN, 'start', '--testing', '--data', this.dataDir, '--listen', listen, '--api', api,
      ...(this.swarmKeyFile !== undefined ? ['--swarm-key', this.swarmKeyFile] : []), ...(this.opts.startArgs ?? []), ...joinAddrs.flatMap(a => ['--join', a]), ...this.bootstrap.flatMap(a => ['--bootstrap', a])]
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
        // The node writes its token before api.json.
        const token = await readApiToken(this.dataDir)
        const status = await new ReplicantClient(info.url, { token }).status().catch(() => undefined)
        if (status !== undefined) {
          this.child = child
          this.exited = exited
          this.url = info.url
          this.token = token
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
