/**
 * A real replicant node as a child process, started through the CLI as an operator would
 * (plus --testing: suites block peers through the fault routes), for suites that measure
 * through the HTTP API and replication between nodes.
 * The child is killed by the suite cleanup if the suite fails.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { ReplicantClient } from '../api/client.js'
import { readApiToken } from '../api/api-token.js'
import { procMemory, registerCleanup } from './lib.js'

const BIN = fileURLToPath(new URL('../bin/replicant.js', import.meta.url))
const START_TIMEOUT_MS = 30_000
const STOP_TIMEOUT_MS = 120_000
const OUTPUT_KEEP = 64 * 1024

export interface StartOptions {
  dataDir: string
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=DIR']. */
  nodeArgs?: string[]
  env?: NodeJS.ProcessEnv
  /** Extra `replicant start` arguments, e.g. ['--join', MULTIADDR]. */
  startArgs?: string[]
}

export class NodeProcess {
  readonly client: ReplicantClient
  private readonly exited: Promise<number | null>
  private exitCode: number | null | undefined
  private readonly unregister: () => void

  private constructor (readonly child: ChildProcess, readonly dataDir: string, readonly apiUrl: string, readonly apiToken: string, readonly peerId: string,
    private readonly log: { text: string }, exited: Promise<number | null>) {
    this.client = new ReplicantClient(apiUrl, { token: apiToken })
    this.exited = exited
    void exited.then(code => { this.exitCode = code })
    this.unregister = registerCleanup(async () => { await this.stop() })
  }

  get pid (): number { return this.child.pid! }
  /** The last 64 KiB of the node's stdout and stderr. */
  get output (): string { return this.log.text }

  static async start (opts: StartOptions): Promise<NodeProcess> {
    const args = [...(opts.nodeArgs ?? []), BIN, 'start', '--testing', '--data', opts.dataDir,
      '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', ...(opts.startArgs ?? [])]
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env })
    const log = { text: '' }
    const keep = (b: Buffer): void => { log.text = (log.text + b.toString('utf8')).slice(-OUTPUT_KEEP) }
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    const exited = new Promise<number | null>(resolve => child.once('exit', (code, signal) => resolve(code ?? (signal !== null ? -1 : null))))
    const unregisterKill = registerCleanup(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    let dead = false
    void exited.then(() => { dead = true })
    const deadline = Date.now() + START_TIMEOUT_MS
    while (true) {
      if (dead) { unregisterKill(); throw new Error(`replicant node exited during start:\n${log.text}`) }
      try {
        const info = JSON.parse(await readFile(join(opts.dataDir, 'api.json'), 'utf8')) as { url: string, pid: number, peerId: string }
        if (info.pid === child.pid) {
          // The node writes its API token before api.json.
          const node = new NodeProcess(child, opts.dataDir, info.url, await readApiToken(opts.dataDir), info.peerId, log, exited)
          unregisterKill() // the node's own cleanup (stop) replaces the bare kill
          return node
        }
      } catch { /* api.json not written yet, or half written */ }
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        unregisterKill()
        throw new Error(`replicant node did not write api.json within ${START_TIMEOUT_MS} ms:\n${log.text}`)
      }
      await sleep(50)
    }
  }

  /** Peak (VmHWM) and current RSS of the node process, current split into anonymous and file pages. */
  async memory (): Promise<{ peakRss: number, rss: number, rssAnon: number, rssFile: number }> {
    return await procMemory(this.pid)
  }

  /** SIGTERM (clean shutdown, writes a --cpu-prof profile), SIGKILL after a timeout. Idempotent. */
  async stop (): Promise<void> {
    this.unregister()
    if (this.exitCode !== undefined) return
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    try {
      const code = await this.exited
      if (code !== 0) throw new Error(`replicant node exited with ${String(code)} on stop:\n${this.log.text.slice(-4000)}`)
    } finally {
      clearTimeout(timer)
    }
  }
}
