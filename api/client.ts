import { request, type IncomingMessage } from 'node:http'
import { pipeline } from 'node:stream/promises'
import { Readable, type Writable } from 'node:stream'
import { ReplicantError, Codes } from '../core/errors.js'
import { normalizePath } from '../core/paths.js'
import type { LinkShape } from '../replication/link-faults.js'

export interface ClientPutOptions { mode?: number, mtime?: number, size?: number }

/**
 * A client of a node's HTTP API (the CLI uses it; scripts may too). Errors from the node come
 * back as ReplicantError with the node's code.
 */
export class ReplicantClient {
  constructor (readonly baseUrl: string) {}

  private async send (method: string, path: string, opts: { body?: Readable | string, headers?: Record<string, string | number> } = {}): Promise<IncomingMessage> {
    const url = new URL(path, this.baseUrl)
    return await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(url, { method, headers: opts.headers })
      req.once('response', resolve)
      req.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED') reject(new ReplicantError(Codes.NODE_NOT_RUNNING, `no node answers at ${this.baseUrl}`))
        else reject(err)
      })
      if (opts.body === undefined) req.end()
      else if (typeof opts.body === 'string') req.end(opts.body)
      else pipeline(opts.body, req).catch(reject)
    })
  }

  private async check (res: IncomingMessage): Promise<IncomingMessage> {
    if (res.statusCode !== undefined && res.statusCode < 400) return res
    const parts: Buffer[] = []
    for await (const p of res) parts.push(p as Buffer)
    const text = Buffer.concat(parts).toString('utf8')
    try {
      const { error } = JSON.parse(text)
      throw new ReplicantError(error.code, error.message, error.details)
    } catch (err) {
      if (err instanceof ReplicantError) throw err
      throw new ReplicantError(Codes.HTTP_ERROR, `HTTP ${res.statusCode}: ${text.slice(0, 200)}`)
    }
  }

  private async json<T> (method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.check(await this.send(method, path, body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }))
    const parts: Buffer[] = []
    for await (const p of res) parts.push(p as Buffer)
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as T
  }

  static filePath (volume: string, path: string): string {
    // Validated here too: URL resolution would silently fold `.` and `..` segments away.
    const segs = normalizePath(path).slice(1).split('/').map(encodeURIComponent)
    return `/v1/volumes/${encodeURIComponent(volume)}/files/${segs.join('/')}`
  }

  async status (): Promise<any> { return await this.json('GET', '/v1/status') }
  async peers (): Promise<any> { return await this.json('GET', '/v1/peers') }
  async listVolumes (): Promise<any> { return await this.json('GET', '/v1/volumes') }
  async createVolume (body: Record<string, unknown>): Promise<any> { return await this.json('POST', '/v1/volumes', body) }
  async addReplica (volume: string, peerId: string): Promise<any> { return await this.json('POST', `/v1/volumes/${encodeURIComponent(volume)}/replicas`, { peerId }) }
  async removeReplica (volume: string, peerId: string): Promise<any> { return await this.json('DELETE', `/v1/volumes/${encodeURIComponent(volume)}/replicas/${encodeURIComponent(peerId)}`) }
  async compactLog (volume: string, upto?: number): Promise<any> { return await this.json('POST', `/v1/volumes/${encodeURIComponent(volume)}/compact`, upto !== undefined ? { upto } : {}) }
  async setWriteMode (volume: string, writeMode: string): Promise<any> { return await this.json('PATCH', `/v1/volumes/${encodeURIComponent(volume)}`, { writeMode }) }
  async createSnapshot (volume: string, name?: string): Promise<any> { return await this.json('POST', `/v1/volumes/${encodeURIComponent(volume)}/snapshots`, name !== undefined ? { name } : {}) }
  async listSnapshots (volume: string): Promise<any> { return await this.json('GET', `/v1/volumes/${encodeURIComponent(volume)}/snapshots`) }
  async deleteSnapshot (volume: string, name: string): Promise<any> { return await this.json('DELETE', `/v1/volumes/${encodeURIComponent(volume)}/snapshots/${encodeURIComponent(name)}`) }
  /** Streams a dump of `snapshot` (incremental since `since`) into `out`. */
  async dump (volume: string, snapshot: string, out: Writable, since?: string): Promise<void> {
    const q = new URLSearchParams({ snapshot, ...(since !== undefined ? { since } : {}) })
    const res = await this.check(await this.send('GET', `/v1/volumes/${encodeURIComponent(volume)}/dump?${q.toString()}`))
    await pipeline(res, out)
  }

  async restore (body: Readable, size?: number): Promise<any> {
    const headers: Record<string, string | number> = { 'content-type': 'application/vnd.replicant.dump' }
    if (size !== undefined) headers['content-length'] = size
    const res = await this.check(await this.send('POST', '/v1/restore', { body, headers }))
    const parts: Buffer[] = []
    for await (const p of res) parts.push(p as Buffer)
    return JSON.parse(Buffer.concat(parts).toString('utf8'))
  }

  /** Runs a volume move on the node, calling `onProgress` for each progress line. */
  async move (volume: string, body: { from: string, to: string, abandon?: boolean }, onProgress: (p: any) => void = () => {}): Promise<any> {
    const res = await this.check(await this.send('POST', `/v1/volumes/${encodeURIComponent(volume)}/move`, { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }))
    let buf = ''
    let last: any
    for await (const piece of res) {
      buf += (piece as Buffer).toString('utf8')
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = JSON.parse(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
        if (line.progress !== undefined) onProgress(line.progress)
        else last = line
      }
    }
    if (last?.error !== undefined) throw new ReplicantError(last.error.code, last.error.message, last.error.details)
    if (last?.result === undefined) throw new ReplicantError(Codes.MOVE_INTERRUPTED, 'the node stopped answering before the move finished: run it again to resume, or with --abandon')
    return last.result
  }

  async gc (youngSeconds?: number, opts: { repack?: boolean } = {}): Promise<any> {
    return await this.json('POST', '/v1/gc', { ...(youngSeconds !== undefined ? { youngSeconds } : {}), ...(opts.repack !== undefined ? { repack: opts.repack } : {}) })
  }
  async volumeInfo (name: string): Promise<any> { return await this.json('GET', `/v1/volumes/${encodeURIComponent(name)}`) }
  async list (volume: string, prefix?: string, opts: { snapshot?: string } = {}): Promise<any> {
    const params = new URLSearchParams()
    if (prefix !== undefined) params.set('prefix', prefix)
    if (opts.snapshot !== undefined) params.set('snapshot', opts.snapshot)
    const q = params.size > 0 ? `?${params.toString()}` : ''
    return await this.json('GET', `/v1/volumes/${encodeURIComponent(volume)}/files${q}`)
  }

  /** Fault injection: the peers this node refuses (a partition), both ways. */
  async faults (): Promise<{ blocked: string[], links: Record<string, LinkShape> }> { return await this.json('GET', '/v1/faults') }
  /** Shapes this node's replies to `peers`: a delay, a bandwidth cap, a loss rate. */
  async slowLink (peers: string[], shape: Partial<LinkShape>): Promise<{ links: Record<string, LinkShape> }> { return await this.json('POST', '/v1/faults/link', { peers, ...shape }) }
  /** Restores the links to `peers` (every link without arguments). */
  async fixLinks (peers?: string[]): Promise<{ links: Record<string, LinkShape> }> { return await this.json('POST', '/v1/faults/unlink', peers === undefined ? {} : { peers }) }
  async block (peers: string[]): Promise<{ blocked: string[] }> { return await this.json('POST', '/v1/faults/block', { peers }) }
  /** Lifts the block on `peers` (every block without arguments). */
  async unblock (peers?: string[]): Promise<{ blocked: string[] }> { return await this.json('POST', '/v1/faults/unblock', peers === undefined ? {} : { peers }) }

  async remove (volume: string, path: string): Promise<any> { return await this.json('DELETE', ReplicantClient.filePath(volume, path)) }

  async put (volume: string, path: string, body: Readable, opts: ClientPutOptions = {}): Promise<any> {
    const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' }
    if (opts.size !== undefined) headers['content-length'] = opts.size
    if (opts.mode !== undefined) headers['x-replicant-mode'] = opts.mode.toString(8)
    if (opts.mtime !== undefined) headers['x-replicant-mtime'] = Math.floor(opts.mtime)
    const res = await this.check(await this.send('PUT', ReplicantClient.filePath(volume, path), { body, headers }))
    const parts: Buffer[] = []
    for await (const p of res) parts.push(p as Buffer)
    return JSON.parse(Buffer.concat(parts).toString('utf8'))
  }

  /** Streams a file (or a byte range of it, `range` as in HTTP: "bytes=0-99") into `out`. */
  async get (volume: string, path: string, out: Writable, opts: { range?: string, snapshot?: string } = {}): Promise<{ status: number, headers: IncomingMessage['headers'] }> {
    const headers: Record<string, string> = opts.range !== undefined ? { range: opts.range } : {}
    const q = opts.snapshot !== undefined ? `?snapshot=${encodeURIComponent(opts.snapshot)}` : ''
    const res = await this.check(await this.send('GET', ReplicantClient.filePath(volume, path) + q, { headers }))
    await pipeline(res, out)
    return { status: res.statusCode ?? 0, headers: res.headers }
  }

  async open (volume: string, path: string, opts: { range?: string, snapshot?: string } = {}): Promise<Readable> {
    const headers: Record<string, string> = opts.range !== undefined ? { range: opts.range } : {}
    const q = opts.snapshot !== undefined ? `?snapshot=${encodeURIComponent(opts.snapshot)}` : ''
    return await this.check(await this.send('GET', ReplicantClient.filePath(volume, path) + q, { headers }))
  }
}

export { Readable }
