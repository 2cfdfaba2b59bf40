/**
 * Shared test helpers. Every resource a helper creates (temp dir, node, child process) is
 * released in the calling test's teardown, so tests never leak into each other.
 */
import '../core/polyfill.js'
import { mkdtemp, rm, readFile } from 'node:fs/promises'
import { createReadStream, createWriteStream } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { request, type IncomingMessage } from 'node:http'
import { request as tlsRequest } from 'node:https'
import { createServer } from 'node:net'
import type { ExecutionContext } from 'ava'
import { ReplicantNode, type NodeOptions } from '../node/replicant-node.js'
import { ReplicantClient } from '../api/client.js'
import { readApiToken } from '../api/api-token.js'

type T = ExecutionContext<unknown>

/** dist/ (this file runs as dist/test/helpers.js). */
export const DIST = join(dirname(fileURLToPath(import.meta.url)), '..')
/** The compiled CLI. */
export const BIN = join(DIST, 'bin', 'replicant.js')
/** Compiled helper scripts run as child processes. */
export const FIXTURES = join(DIST, 'test', 'fixtures')

export const LOOPBACK = '/ip4/127.0.0.1/tcp/0'

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** A fresh empty directory under the OS temp dir, removed when the test ends. */
export async function tmpDir (t: T, prefix = 'replicant-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true, maxRetries: 3 }) })
  return dir
}

/**
 * Starts an in-process ReplicantNode on loopback with an ephemeral libp2p port and HTTP API
 * port. `opts.dataDir` reuses a directory (restart); otherwise a temp dir is made. Any other
 * NodeOptions pass through. Testing is on (fault routes and `faults` honoured) unless
 * `testing: false` is given. Stopped in teardown (stop() is idempotent, so a test may stop it first).
 */
export async function startNode (t: T, opts: Partial<NodeOptions> = {}): Promise<ReplicantNode> {
  const dataDir = opts.dataDir ?? await tmpDir(t)
  const node = await ReplicantNode.start({ listen: [LOOPBACK], api: '127.0.0.1:0', testing: true, ...opts, dataDir })
  t.teardown(async () => { await node.stop().catch(() => {}) })
  if (node.apiUrl !== undefined && node.apiToken !== undefined) apiTokens.set(node.apiUrl, node.apiToken)
  return node
}

/**
 * The API token of each node these helpers started, by API URL: httpRequest sends it unless
 * told otherwise, so that tests about something else need not carry it around.
 */
const apiTokens = new Map<string, string>()

/** The token of the node these helpers started at `apiUrl`. */
export function tokenOf (apiUrl: string): string {
  const token = apiTokens.get(apiUrl)
  if (token === undefined) throw new Error(`no node started by the test helpers at ${apiUrl}`)
  return token
}

/** A client of a node started by these helpers (in-process or a process), with its token. */
export function clientOf (node: { apiUrl?: string, url?: string }): ReplicantClient {
  const url = node.apiUrl ?? node.url
  if (url === undefined) throw new Error('the node has no HTTP API')
  return new ReplicantClient(url, { token: tokenOf(url) })
}

export interface CliResult { code: number | null, signal: NodeJS.Signals | null, stdout: string, stdoutBytes: Buffer, stderr: string }

/**
 * Runs the real CLI binary with `--data dataDir` and waits for it to exit. DEBUG is cleared
 * (unless given in `env`) so stderr holds only what the CLI itself reports.
 */
export async function runCli (args: string[], opts: { dataDir: string, input?: string | Uint8Array, env?: NodeJS.ProcessEnv }): Promise<CliResult> {
  const argv = [BIN, '--data', opts.dataDir, ...args]
  const env = { ...process.env }
  delete env.DEBUG
  const proc = spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...env, ...opts.env } })
  const out: Buffer[] = []
  const err: Buffer[] = []
  proc.stdout.on('data', (b: Buffer) => out.push(b))
  proc.stderr.on('data', (b: Buffer) => err.push(b))
  proc.stdin.on('error', () => {}) // the CLI may exit before reading its input
  if (opts.input !== undefined) proc.stdin.end(opts.input)
  else proc.stdin.end()
  const [code, signal] = await once(proc, 'close') as [number | null, NodeJS.Signals | null]
  const stdoutBytes = Buffer.concat(out)
  return { code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr: Buffer.concat(err).toString('utf8') }
}

export interface NodeProcess {
  proc: ChildProcess
  url: string
  /** Its API token (read from the data dir). */
  token: string
  peerId: string
  /** Resolves when the process has exited (it never rejects). */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  stdout: () => string
  stderr: () => string
  /** Sends `signal` (default SIGTERM) and waits for exit. */
  kill: (signal?: NodeJS.Signals) => Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/**
 * Runs `replicant start` on `dataDir` in a child process and waits until the node it started
 * has written DIR/api.json (with this process's pid, so a stale file from a killed node does
 * not count), answers GET /v1/status and has printed its start banner. Started with --testing
 * (fault routes and REPLICANT_FAULTS honoured). Killed with SIGKILL in teardown if still running.
 */
export async function spawnNodeProcess (t: T, dataDir: string, extraArgs: string[] = []): Promise<NodeProcess> {
  const proc = spawn(process.execPath, [BIN, '--data', dataDir, 'start', '--testing', '--listen', LOOPBACK, '--api', '127.0.0.1:0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  proc.stdout.setEncoding('utf8').on('data', (s: string) => { out += s })
  proc.stderr.setEncoding('utf8').on('data', (s: string) => { err += s })
  let done: { code: number | null, signal: NodeJS.Signals | null } | undefined
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => {
    proc.once('close', (code, signal) => { done = { code, signal }; resolve(done) })
  })
  t.teardown(async () => {
    if (done === undefined) { proc.kill('SIGKILL'); await exited }
  })
  const kill = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null, signal: NodeJS.Signals | null }> => {
    if (done === undefined) proc.kill(signal)
    return await exited
  }
  while (true) {
    if (done !== undefined) {
      throw new Error(`replicant start exited (code ${String(done.code)}, signal ${String(done.signal)}) before serving\nstdout: ${out}\nstderr: ${err}`)
    }
    // api.json may be missing, stale (a killed node's) or caught half-written.
    const info = await readFile(join(dataDir, 'api.json'), 'utf8').then(s => JSON.parse(s) as { url: string, pid: number, peerId: string, tlsCert?: string }).catch(() => undefined)
    if (info !== undefined && info.pid === proc.pid) {
      // The node writes its token before api.json.
      const token = await readApiToken(dataDir)
      const ca = info.tlsCert !== undefined ? await readFile(info.tlsCert) : undefined
      const res = await httpRequest(info.url, { path: '/v1/status', token, ...(ca !== undefined ? { ca } : {}) }).catch(() => undefined)
      // The start banner ends with the API line: once it is here, the banner is complete.
      if (res?.status === 200 && out.includes(`api: ${info.url}\n`)) {
        apiTokens.set(info.url, token)
        return { proc, url: info.url, token, peerId: info.peerId, exited, stdout: () => out, stderr: () => err, kill }
      }
    }
    await sleep(50)
  }
}

export interface HttpResult { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer, json: () => any }

/**
 * One HTTP request with the path sent exactly as given (no URL normalisation, so `..` and
 * `%00` reach the server raw). Resolves with the whole response. Sends the API token of the
 * node these helpers started at `baseUrl` (`token` overrides it; null sends none), unless
 * `headers` has an Authorization of its own.
 */
export async function httpRequest (baseUrl: string, opts: { method?: string, path: string, headers?: Record<string, string | number>, body?: string | Uint8Array, token?: string | null, localAddress?: string, ca?: Buffer }): Promise<HttpResult> {
  const u = new URL(baseUrl)
  const token = opts.token === null ? undefined : opts.token ?? apiTokens.get(baseUrl)
  const given = Object.keys(opts.headers ?? {}).some(k => k.toLowerCase() === 'authorization')
  const headers = { ...(token !== undefined && !given ? { authorization: `Bearer ${token}` } : {}), ...opts.headers }
  return await new Promise<HttpResult>((resolve, reject) => {
    const options = { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port, method: opts.method ?? 'GET', path: opts.path, headers, agent: false, ...(opts.localAddress !== undefined ? { localAddress: opts.localAddress } : {}) }
    const done = (res: IncomingMessage): void => {
      const parts: Buffer[] = []
      res.on('data', (b: Buffer) => parts.push(b))
      res.once('error', reject)
      res.once('end', () => {
        const body = Buffer.concat(parts)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) })
      })
    }
    const req = u.protocol === 'https:' ? tlsRequest({ ...options, ...(opts.ca !== undefined ? { ca: opts.ca } : {}) }, done) : request(options, done)
    req.once('error', reject)
    req.end(opts.body)
  })
}

// ---- data ----

export function sha256Hex (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** sha256 (hex) of everything a byte stream yields. */
export async function sha256Stream (source: AsyncIterable<Uint8Array | string>): Promise<{ hex: string, size: number }> {
  const h = createHash('sha256')
  let size = 0
  for await (const piece of source) {
    const b = typeof piece === 'string' ? Buffer.from(piece) : piece
    h.update(b)
    size += b.byteLength
  }
  return { hex: h.digest('hex'), size }
}

/**
 * `size` random bytes as a stream of pieces of at most `piece` bytes, generated lazily (never
 * held in memory). `digest()` gives the sha256 of what was yielded so far.
 */
export function randomSource (size: number, piece = 1024 * 1024): { source: AsyncGenerator<Uint8Array>, digest: () => string, yielded: () => number } {
  const h = createHash('sha256')
  let yielded = 0
  function * gen (): Generator<Uint8Array> {
    while (yielded < size) {
      const b = randomBytes(Math.min(piece, size - yielded))
      h.update(b)
      yielded += b.byteLength
      yield b
    }
  }
  let hex: string | undefined
  return { source: asyncSource(gen()), digest: () => (hex ??= h.digest('hex')), yielded: () => yielded }
}

/**
 * A sync sequence as the async source the write APIs take, each item made only when pulled
 * (so a generator's side effects happen in the order the consumer reads) and handed over on
 * a later turn, as a stream would.
 */
export async function * asyncSource<T> (items: Iterable<T>): AsyncGenerator<T> {
  for (const item of items) yield await Promise.resolve(item)
}

/** Yields `bytes` split into pieces of the given sizes, cycling through them. */
export function pieces (bytes: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  return asyncSource(piecesOf(bytes, sizes))
}

function * piecesOf (bytes: Uint8Array, sizes: number[]): Generator<Uint8Array> {
  let offset = 0
  let i = 0
  while (offset < bytes.byteLength) {
    const n = Math.max(1, sizes[i++ % sizes.length])
    yield bytes.subarray(offset, offset + n)
    offset += n
  }
}

/** Collects a byte stream into one Buffer (for small data only). */
export async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const p of source) parts.push(p)
  return Buffer.concat(parts)
}

/** Writes `size` random bytes to a new file `name` in `dir`; returns its path and sha256. */
export async function writeRandomFile (dir: string, name: string, size: number): Promise<{ path: string, sha256: string, bytes: Buffer | undefined }> {
  const path = join(dir, name)
  if (size <= 16 * 1024 * 1024) {
    const bytes = randomBytes(size)
    const ws = createWriteStream(path)
    ws.end(bytes)
    await once(ws, 'close')
    return { path, sha256: sha256Hex(bytes), bytes }
  }
  const src = randomSource(size)
  const ws = createWriteStream(path)
  for await (const b of src.source) {
    if (!ws.write(b)) await once(ws, 'drain')
  }
  ws.end()
  await once(ws, 'close')
  return { path, sha256: src.digest(), bytes: undefined }
}

export async function sha256File (path: string): Promise<string> {
  return (await sha256Stream(createReadStream(path))).hex
}

/** Polls `fn` until it returns a value other than undefined. Never fails on time: ava's timeout is the bound. */
export async function waitFor<V> (fn: () => Promise<V | undefined> | V | undefined, intervalMs = 50): Promise<V> {
  while (true) {
    const v = await fn()
    if (v !== undefined) return v
    await sleep(intervalMs)
  }
}

/** A loopback TCP port that nothing listens on (it was free a moment ago). */
/**
 * A loopback port nothing listens on, for "no node answers" cases. Drawn below the kernel's
 * ephemeral range (32768-60999 here), where every listener of the tests (port 0) is placed, so
 * another test cannot start listening on it in the seconds before it is used.
 */
export async function closedPort (): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    const server = createServer()
    const free = await new Promise<boolean>(resolve => {
      server.once('error', () => resolve(false))
      server.listen(port, '127.0.0.1', () => resolve(true))
    })
    if (free) { server.close(); await once(server, 'close'); return port }
  }
}

export { sleep }

/**
 * Runs a fixture script (dist/test/fixtures/NAME) in a child process until its stdout shows
 * `marker`, then kills it with -9 (a crash at a known point); returns what it printed.
 */
export async function killChildAt (t: T, fixture: string, args: string[], marker: string): Promise<string> {
  const child = spawn(process.execPath, [join(FIXTURES, fixture), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = once(child, 'close')
  t.teardown(async () => { if (child.exitCode === null && child.signalCode === null) { child.kill('SIGKILL'); await exited } })
  let out = ''
  let errOut = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => { errOut += s })
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; if (out.includes(marker)) resolve() })
    child.once('close', code => reject(new Error(`${fixture} exited before '${marker.trim()}' (${String(code)}): ${out}${errOut}`)))
  })
  child.kill('SIGKILL')
  const [, signal] = await exited
  t.is(signal, 'SIGKILL')
  return out
}
