import { request, type IncomingMessage } from 'node:http'
import { request as tlsRequest } from 'node:https'
import { pipeline } from 'node:stream/promises'
import { Readable, type Writable } from 'node:stream'
import { ReplicantError, Codes, toErrorCode } from '../core/errors.js'
import { normalizePath } from '../core/paths.js'
import type { ImportResult } from './archive.js'
import type {
  AddReplicaResult, AnnouncedVolume, BlockedList, CrashList, CompactResult, CreateVolumeRequest, FaultsResponse, FileList,
  FileRemoved, FileView, GcResult, LinkList, LinkShape, MoveProgress, MoveResult, PeerList, RemoveReplicaResult,
  RestoreResult, SnapshotCreated, SnapshotDeleted, SnapshotList, StatusResponse, VolumeDropped, VolumeInfo, VolumeList,
  ConflictList, ResolveResult, KeepChoice
} from './types.js'

export interface ClientPutOptions { mode?: number, mtime?: number, size?: number }

export interface ClientOptions {
  /** The node's API token (`replicant api-token`), sent as `Authorization: Bearer`. */
  token?: string
  /** For an https API: the certificate (PEM) to trust, e.g. the node's self-signed one. */
  ca?: string | Buffer
}

/** The error a node answered with (`{ error: { code, message, details } }`); an unregistered code becomes HTTP_ERROR. */
function errorFrom (body: unknown): ReplicantError | undefined {
  if (body === null || typeof body !== 'object' || !('error' in body)) return undefined
  const error = body.error
  if (error === null || typeof error !== 'object') return undefined
  const e = error as { code?: unknown, message?: unknown, details?: unknown }
  const details = e.details !== null && typeof e.details === 'object' ? e.details as Record<string, unknown> : undefined
  return new ReplicantError(toErrorCode(e.code, Codes.HTTP_ERROR), typeof e.message === 'string' ? e.message : String(e.message), details)
}

async function readText (res: IncomingMessage): Promise<string> {
  const parts: Buffer[] = []
  for await (const p of res as AsyncIterable<Buffer>) parts.push(p)
  return Buffer.concat(parts).toString('utf8')
}

/** A reset on a reused keep-alive socket before any answer (Node's documented race with the server's idle timeout). */
class StaleSocketError extends Error {
  constructor (override readonly cause: NodeJS.ErrnoException) { super(cause.message) }
}

function unwrapStale (err: unknown): unknown { return err instanceof StaleSocketError ? err.cause : err }

/** One NDJSON line of a move: a progress report, the result, or the error that ended it. */
interface MoveLine { progress?: MoveProgress, result?: MoveResult, error?: unknown }

/**
 * A client of a node's HTTP API (the CLI uses it; scripts may too). Errors from the node come
 * back as ReplicantError with the node's code.
 */
export class ReplicantClient {
  constructor (readonly baseUrl: string, private readonly opts: ClientOptions = {}) {}

  private async send (method: string, path: string, opts: { body?: Readable | string, headers?: Record<string, string | number> } = {}): Promise<IncomingMessage> {
    const url = new URL(path, this.baseUrl)
    try {
      return await this.sendOnce(url, method, opts)
    } catch (err) {
      // An idle keep-alive socket the server closed just as we reused it: the request never
      // reached the handler, so a read (which changes nothing) is sent again on a new socket.
      if (!(err instanceof StaleSocketError) || (method !== 'GET' && method !== 'HEAD')) throw unwrapStale(err)
      return await this.sendOnce(url, method, opts).catch(e => { throw unwrapStale(e) })
    }
  }

  private async sendOnce (url: URL, method: string, opts: { body?: Readable | string, headers?: Record<string, string | number> }): Promise<IncomingMessage> {
    return await new Promise<IncomingMessage>((resolve, reject) => {
      const headers = { ...opts.headers, ...(this.opts.token !== undefined ? { authorization: `Bearer ${this.opts.token}` } : {}) }
      const req = url.protocol === 'https:'
        ? tlsRequest(url, { method, headers, ...(this.opts.ca !== undefined ? { ca: this.opts.ca } : {}) })
        : request(url, { method, headers })
      req.once('response', resolve)
      req.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED') reject(new ReplicantError(Codes.NODE_NOT_RUNNING, `no node answers at ${this.baseUrl}`))
        else if (err.code === 'ECONNRESET' && req.reusedSocket) reject(new StaleSocketError(err))
        else reject(err)
      })
      if (opts.body === undefined) req.end()
      else if (typeof opts.body === 'string') req.end(opts.body)
      else pipeline(opts.body, req).catch(reject)
    })
  }

  private async check (res: IncomingMessage): Promise<IncomingMessage> {
    if (res.statusCode !== undefined && res.statusCode < 400) return res
    const text = await readText(res)
    let err: ReplicantError | undefined
    try { err = errorFrom(JSON.parse(text)) } catch { /* not JSON: the status and the text say what happened */ }
    throw err ?? new ReplicantError(Codes.HTTP_ERROR, `HTTP ${res.statusCode}: ${text.slice(0, 200)}`)
  }

  /** The JSON answer of a request that succeeded (the type is what api/types.ts says the route sends). */
  private async body<T> (res: IncomingMessage): Promise<T> {
    return JSON.parse(await readText(await this.check(res))) as T
  }

  private async json<T> (method: string, path: string, body?: unknown): Promise<T> {
    const text = body === undefined ? undefined : JSON.stringify(body)
    // content-length always: Node frames no body of a DELETE by default (no chunked encoding).
    return await this.body<T>(await this.send(method, path, text === undefined
      ? {}
      : { body: text, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }))
  }

  static filePath (volume: string, path: string): string {
    // Validated here too: URL resolution would silently fold `.` and `..` segments away.
    const segs = normalizePath(path).slice(1).split('/').map(encodeURIComponent)
    return `/v1/volumes/${encodeURIComponent(volume)}/files/${segs.join('/')}`
  }

  private static volumePath (volume: string, rest = ''): string {
    return `/v1/volumes/${encodeURIComponent(volume)}${rest}`
  }

  async status (): Promise<StatusResponse> { return await this.json('GET', '/v1/status') }
  async peers (): Promise<PeerList> { return await this.json('GET', '/v1/peers') }
  async listVolumes (): Promise<VolumeList> { return await this.json('GET', '/v1/volumes') }
  async createVolume (body: CreateVolumeRequest): Promise<AnnouncedVolume> { return await this.json('POST', '/v1/volumes', body) }
  async volumeInfo (name: string): Promise<VolumeInfo> { return await this.json('GET', ReplicantClient.volumePath(name)) }
  async addReplica (volume: string, peerId: string, opts: { force?: boolean } = {}): Promise<AddReplicaResult> { return await this.json('POST', ReplicantClient.volumePath(volume, '/replicas'), { peerId, ...(opts.force === true ? { force: true } : {}) }) }
  async removeReplica (volume: string, peerId: string, opts: { force?: boolean } = {}): Promise<RemoveReplicaResult> { return await this.json('DELETE', ReplicantClient.volumePath(volume, `/replicas/${encodeURIComponent(peerId)}`), opts.force === true ? { force: true } : undefined) }
  async grantReader (volume: string, peer: string, access = 'read'): Promise<AnnouncedVolume> { return await this.json('POST', ReplicantClient.volumePath(volume, '/grants'), { peer, access }) }
  /** Grants every peer of `peers` read access in one generation. */
  async grantReaders (volume: string, peers: string[], access = 'read'): Promise<AnnouncedVolume> { return await this.json('POST', ReplicantClient.volumePath(volume, '/grants'), { peers, access }) }
  async revokeReader (volume: string, peer: string): Promise<AnnouncedVolume> { return await this.json('DELETE', ReplicantClient.volumePath(volume, `/grants/${encodeURIComponent(peer)}`)) }
  async acceptVolume (volume: string, from: string): Promise<{ volume: string, from: string, accepted: true }> { return await this.json('POST', ReplicantClient.volumePath(volume, '/accept'), { from }) }
  async dropVolume (name: string): Promise<VolumeDropped> { return await this.json('DELETE', ReplicantClient.volumePath(name)) }
  async compactLog (volume: string, upto?: number): Promise<CompactResult> { return await this.json('POST', ReplicantClient.volumePath(volume, '/compact'), upto !== undefined ? { upto } : {}) }
  async setWriteMode (volume: string, writeMode: string, opts: { force?: boolean } = {}): Promise<AnnouncedVolume> { return await this.json('PATCH', ReplicantClient.volumePath(volume), { writeMode, ...(opts.force === true ? { force: true } : {}) }) }
  async createSnapshot (volume: string, name?: string): Promise<SnapshotCreated> { return await this.json('POST', ReplicantClient.volumePath(volume, '/snapshots'), name !== undefined ? { name } : {}) }
  async listSnapshots (volume: string): Promise<SnapshotList> { return await this.json('GET', ReplicantClient.volumePath(volume, '/snapshots')) }
  async deleteSnapshot (volume: string, name: string): Promise<SnapshotDeleted> { return await this.json('DELETE', ReplicantClient.volumePath(volume, `/snapshots/${encodeURIComponent(name)}`)) }

  /** Streams a dump of `snapshot` (incremental since `since`) into `out`. */
  async dump (volume: string, snapshot: string, out: Writable, since?: string): Promise<void> {
    const q = new URLSearchParams({ snapshot, ...(since !== undefined ? { since } : {}) })
    const res = await this.check(await this.send('GET', ReplicantClient.volumePath(volume, `/dump?${q.toString()}`)))
    await pipeline(res, out)
  }

  async restore (body: Readable, size?: number): Promise<RestoreResult> {
    const headers: Record<string, string | number> = { 'content-type': 'application/vnd.replicant.dump' }
    if (size !== undefined) headers['content-length'] = size
    return await this.body(await this.send('POST', '/v1/restore', { body, headers }))
  }

  /** Runs a volume move on the node, calling `onProgress` for each progress line. */
  async move (volume: string, body: { from: string, to: string, abandon?: boolean, force?: boolean }, onProgress: (p: MoveProgress) => void = () => {}): Promise<MoveResult> {
    const res = await this.check(await this.send('POST', ReplicantClient.volumePath(volume, '/move'), { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }))
    let buf = ''
    let last: MoveLine | undefined
    for await (const piece of res as AsyncIterable<Buffer>) {
      buf += piece.toString('utf8')
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, nl)) as MoveLine
        buf = buf.slice(nl + 1)
        if (line.progress !== undefined) onProgress(line.progress)
        else last = line
      }
    }
    if (last?.error !== undefined) throw errorFrom(last) ?? new ReplicantError(Codes.HTTP_ERROR, 'the move failed on the node')
    if (last?.result === undefined) throw new ReplicantError(Codes.MOVE_INTERRUPTED, 'the node stopped answering before the move finished: run it again to resume, or with --abandon')
    return last.result
  }

  async gc (youngSeconds?: number, opts: { repack?: boolean } = {}): Promise<GcResult> {
    return await this.json('POST', '/v1/gc', { ...(youngSeconds !== undefined ? { youngSeconds } : {}), ...(opts.repack !== undefined ? { repack: opts.repack } : {}) })
  }

  async list (volume: string, prefix?: string, opts: { snapshot?: string } = {}): Promise<FileList> {
    const params = new URLSearchParams()
    if (prefix !== undefined) params.set('prefix', prefix)
    if (opts.snapshot !== undefined) params.set('snapshot', opts.snapshot)
    const q = params.size > 0 ? `?${params.toString()}` : ''
    return await this.json('GET', ReplicantClient.volumePath(volume, `/files${q}`))
  }

  /** Fault injection (nodes started with --testing): the peers this node refuses (a partition), both ways. */
  async faults (): Promise<FaultsResponse> { return await this.json('GET', '/v1/faults') }
  /** Shapes this node's replies to `peers`: a delay, a bandwidth cap, a loss rate. */
  async slowLink (peers: string[], shape: Partial<LinkShape>, seed?: string): Promise<LinkList> { return await this.json('POST', '/v1/faults/link', { peers, ...shape, ...(seed !== undefined ? { seed } : {}) }) }
  /** Restores the links to `peers` (every link without arguments). */
  async fixLinks (peers?: string[]): Promise<LinkList> { return await this.json('POST', '/v1/faults/unlink', peers === undefined ? {} : { peers }) }
  /** Testing nodes only: the node SIGKILLs itself at `point` after `skip` passes; no point disarms all. */
  async crashAt (point?: string, skip?: number): Promise<CrashList> { return await this.json('POST', '/v1/faults/crash', point === undefined ? {} : { point, ...(skip !== undefined ? { skip } : {}) }) }
  async block (peers: string[]): Promise<BlockedList> { return await this.json('POST', '/v1/faults/block', { peers }) }
  /** Lifts the block on `peers` (every block without arguments). */
  async unblock (peers?: string[]): Promise<BlockedList> { return await this.json('POST', '/v1/faults/unblock', peers === undefined ? {} : { peers }) }

  async conflicts (volume: string): Promise<ConflictList> { return await this.json('GET', ReplicantClient.volumePath(volume, '/conflicts')) }
  async resolve (volume: string, path: string, keep: KeepChoice): Promise<ResolveResult> { return await this.json('POST', ReplicantClient.volumePath(volume, '/conflicts/resolve'), { path, keep }) }
  /** The Prometheus text of `GET /metrics`. */
  async metrics (): Promise<string> { return await readText(await this.check(await this.send('GET', '/metrics'))) }

  /** The node's server-sent events (`GET /v1/events`) until `signal` aborts or the node goes away; `since` replays kept events after that id. */
  async * events (opts: { signal?: AbortSignal, since?: number, kinds?: string[] } = {}): AsyncGenerator<SseEvent> {
    const q = new URLSearchParams({ ...(opts.since !== undefined ? { since: String(opts.since) } : {}), ...(opts.kinds !== undefined ? { kinds: opts.kinds.join(',') } : {}) })
    const res = await this.check(await this.send('GET', `/v1/events${q.size > 0 ? `?${q.toString()}` : ''}`))
    const stop = (): void => { res.destroy() }
    opts.signal?.addEventListener('abort', stop, { once: true })
    let buf = ''
    try {
      for await (const piece of res as AsyncIterable<Buffer>) {
        buf += piece.toString('utf8')
        let end: number
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end)
          buf = buf.slice(end + 2)
          const e = parseSse(block)
          if (e !== undefined) yield e
        }
      }
    } catch (err) {
      if (opts.signal?.aborted !== true) throw err
    } finally {
      opts.signal?.removeEventListener('abort', stop)
      res.destroy()
    }
  }

  async remove (volume: string, path: string): Promise<FileRemoved> { return await this.json('DELETE', ReplicantClient.filePath(volume, path)) }

  async put (volume: string, path: string, body: Readable, opts: ClientPutOptions = {}): Promise<FileView> {
    const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' }
    if (opts.size !== undefined) headers['content-length'] = opts.size
    if (opts.mode !== undefined) headers['x-replicant-mode'] = opts.mode.toString(8)
    if (opts.mtime !== undefined) headers['x-replicant-mtime'] = Math.floor(opts.mtime)
    return await this.body(await this.send('PUT', ReplicantClient.filePath(volume, path), { body, headers }))
  }

  /** Writes the regular files of the tar stream `body` under `prefix` (the import route); the node's counts. */
  async importTar (volume: string, prefix: string, body: Readable): Promise<ImportResult> {
    const q = new URLSearchParams({ prefix })
    return await this.body(await this.send('POST', ReplicantClient.volumePath(volume, `/import?${q.toString()}`), { body, headers: { 'content-type': 'application/x-tar' } }))
  }

  /** Streams a file (or a byte range of it, `range` as in HTTP: "bytes=0-99") into `out`. */
  async get (volume: string, path: string, out: Writable, opts: { range?: string, snapshot?: string } = {}): Promise<{ status: number, headers: IncomingMessage['headers'] }> {
    const res = await this.open(volume, path, opts)
    await pipeline(res, out)
    return { status: res.statusCode ?? 0, headers: res.headers }
  }

  async open (volume: string, path: string, opts: { range?: string, snapshot?: string } = {}): Promise<IncomingMessage> {
    const headers: Record<string, string> = opts.range !== undefined ? { range: opts.range } : {}
    const q = opts.snapshot !== undefined ? `?snapshot=${encodeURIComponent(opts.snapshot)}` : ''
    return await this.check(await this.send('GET', ReplicantClient.filePath(volume, path) + q, { headers }))
  }
}

/** One server-sent event: its id, kind (`event:`) and JSON data. */
export interface SseEvent { id: number | undefined, kind: string, data: Record<string, unknown> }

function parseSse (block: string): SseEvent | undefined {
  let id: number | undefined
  let kind = 'message'
  const data: string[] = []
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'id') id = Number(value)
    else if (field === 'event') kind = value
    else if (field === 'data') data.push(value)
  }
  if (data.length === 0) return undefined
  return { id, kind, data: JSON.parse(data.join('\n')) as Record<string, unknown> }
}

export { Readable }
