import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { once } from 'node:events'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { peerIdFromString } from '@libp2p/peer-id'
import { ReplicantError, InvalidInputError, NotFoundError, Codes, isReplicantError } from '../core/errors.js'
import { httpStatusOf } from './error-status.js'
import { parseRange } from './http-range.js'
import { writeDump, restoreDump, verifyDump, spooled, tempName } from '../replication/dump.js'
import { mkdir, rm, open } from 'node:fs/promises'
import { join } from 'node:path'
import { normalizePrefix } from '../core/paths.js'
import { fileView } from '../replication/volume-service.js'
import { logger } from '../core/log.js'
import type { ReplicantNode } from '../node/replicant-node.js'

const log = logger('http')

/** Largest JSON request body accepted (volume create and other control calls). */
const MAX_JSON_BODY = 64 * 1024

type Handler = (req: IncomingMessage, res: ServerResponse, params: string[], url: URL) => Promise<void>

interface Route { method: string, pattern: RegExp, handler: Handler }

function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function readJson (req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0
  const parts: Buffer[] = []
  for await (const part of req) {
    size += (part as Buffer).byteLength
    if (size > MAX_JSON_BODY) throw new ReplicantError(Codes.BODY_TOO_LARGE, `request body over ${MAX_JSON_BODY} bytes`)
    parts.push(part as Buffer)
  }
  if (size === 0) return {}
  try {
    const body = JSON.parse(Buffer.concat(parts).toString('utf8'))
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object')
    return body
  } catch (err) {
    throw new InvalidInputError(Codes.BAD_REQUEST, `request body is not a JSON object: ${(err as Error).message}`)
  }
}

/** A request's optional list of peer ids, checked (undefined when absent). */
function peerList (peers: unknown): string[] | undefined {
  if (peers === undefined) return undefined
  if (!Array.isArray(peers) || !peers.every(p => typeof p === 'string' && p.length > 0 && p.length <= 128)) {
    throw new InvalidInputError(Codes.BAD_REQUEST, 'peers must be a list of peer ids')
  }
  for (const p of peers as string[]) {
    try { peerIdFromString(p) } catch { throw new InvalidInputError(Codes.BAD_REQUEST, `not a peer id: ${p}`) }
  }
  return peers as string[]
}

function decodeSegment (s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    throw new InvalidInputError(Codes.BAD_PATH, 'path is not valid percent-encoding')
  }
}

function intHeader (req: IncomingMessage, name: string, radix = 10): number | undefined {
  const v = req.headers[name]
  if (v === undefined || Array.isArray(v)) return undefined
  const n = parseInt(v, radix)
  if (!Number.isSafeInteger(n) || String(n.toString(radix)) !== v.replace(/^0+(?=.)/, '')) {
    throw new InvalidInputError(Codes.BAD_REQUEST, `header ${name} must be an integer`, { value: v })
  }
  return n
}

/** Streams an async iterable of JSON values as `{"<key>":[...]}`, respecting backpressure. */
async function sendJsonList (res: ServerResponse, key: string, items: AsyncIterable<unknown>): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/json' })
  async function * body (): AsyncGenerator<string> {
    yield `{${JSON.stringify(key)}:[`
    let first = true
    for await (const item of items) {
      yield (first ? '' : ',') + JSON.stringify(item)
      first = false
    }
    yield ']}'
  }
  await pipeline(Readable.from(body()), res)
}

/** The node's local HTTP API; the CLI is one of its clients. */
export class HttpApi {
  private readonly server: Server
  private readonly routes: Route[] = []

  constructor (private readonly node: ReplicantNode) {
    this.server = createServer((req, res) => { void this.dispatch(req, res) })
    this.route('GET', /^\/v1\/status$/, async (_req, res) => { sendJson(res, 200, await this.node.status()) })
    this.route('GET', /^\/v1\/peers$/, async (_req, res) => { sendJson(res, 200, { peers: await this.node.peers.list() }) })
    // Fault injection (topologies, chaos runs): a partition is a set of blocked peers, refused
    // both ways by the connection gater, with existing connections hung up.
    this.route('GET', /^\/v1\/faults$/, async (_req, res) => { sendJson(res, 200, { blocked: [...this.node.peers.blocked].sort(), links: this.node.links.list() }) })
    // Slow or lossy links: this node's replies to the peers named are delayed, capped, or lost.
    this.route('POST', /^\/v1\/faults\/(link|unlink)$/, async (req, res, [action]) => {
      const body = await readJson(req)
      const peers = peerList(body.peers)
      if (action === 'link') {
        if (peers === undefined || peers.length === 0) throw new InvalidInputError(Codes.BAD_REQUEST, 'link needs a non-empty list of peers')
        for (const k of ['delayMs', 'bytesPerSecond', 'dropRate'] as const) {
          if (body[k] !== undefined && body[k] !== null && typeof body[k] !== 'number') throw new InvalidInputError(Codes.BAD_REQUEST, `${k} must be a number`)
        }
        try {
          this.node.links.set(peers, body as { delayMs?: number, bytesPerSecond?: number | null, dropRate?: number })
        } catch (err) {
          throw new InvalidInputError(Codes.BAD_REQUEST, (err as Error).message)
        }
      } else {
        this.node.links.clear(peers)
      }
      sendJson(res, 200, { links: this.node.links.list() })
    })
    this.route('POST', /^\/v1\/faults\/(block|unblock)$/, async (req, res, [action]) => {
      const peers = peerList((await readJson(req)).peers)
      if (action === 'block') {
        if (peers === undefined || peers.length === 0) throw new InvalidInputError(Codes.BAD_REQUEST, 'block needs a non-empty list of peers')
        await this.node.peers.block(peers)
      } else {
        this.node.peers.unblock(peers)
      }
      sendJson(res, 200, { blocked: [...this.node.peers.blocked].sort() })
    })
    this.route('GET', /^\/v1\/volumes$/, async (_req, res) => {
      sendJson(res, 200, { volumes: await this.node.listVolumes() })
    })
    this.route('POST', /^\/v1\/volumes$/, async (req, res) => {
      const body = await readJson(req)
      const vol = await this.node.createVolume(body as never)
      sendJson(res, 201, vol)
    })
    this.route('GET', /^\/v1\/volumes\/([^/]+)$/, async (_req, res, [vol]) => {
      sendJson(res, 200, await this.node.volumeInfo(decodeSegment(vol)))
    })
    this.route('POST', /^\/v1\/volumes\/([^/]+)\/replicas$/, async (req, res, [vol]) => {
      const body = await readJson(req)
      sendJson(res, 200, await this.node.addReplica(decodeSegment(vol), body.peerId))
    })
    this.route('GET', /^\/v1\/volumes\/([^/]+)\/dump$/, async (_req, res, [vol], url) => {
      const v = await this.node.volumes.volume(decodeSegment(vol))
      const snapName = url.searchParams.get('snapshot')
      if (snapName === null) throw new InvalidInputError(Codes.BAD_REQUEST, 'a dump needs ?snapshot=NAME')
      const snap = await this.node.store.getSnapshot(v.name, snapName)
      const since = url.searchParams.get('since')
      const base = since !== null ? await this.node.store.getSnapshot(v.name, since) : undefined
      const body = writeDump(this.node.store, v, snap, base, this.node.peerId)
      const first = await body.next()
      res.writeHead(200, { 'content-type': 'application/vnd.replicant.dump', 'content-disposition': `attachment; filename="${v.name}-${snap.name}.dump"` })
      async function * rest (): AsyncGenerator<Uint8Array> {
        if (first.done !== true) yield first.value
        yield * body
      }
      await pipeline(Readable.from(rest()), res)
    })
    this.route('POST', /^\/v1\/volumes\/([^/]+)\/move$/, async (req, res, [vol]) => {
      const body = await readJson(req)
      await this.node.volumes.volume(decodeSegment(vol))
      // Progress as NDJSON lines while the move runs; the last line is the result (or an error).
      res.writeHead(200, { 'content-type': 'application/x-ndjson' })
      const controller = new AbortController()
      res.once('close', () => controller.abort())
      try {
        const result = await this.node.moveVolume(decodeSegment(vol), body.from, body.to, {
          abandon: body.abandon === true,
          signal: controller.signal,
          onProgress: (p) => { res.write(JSON.stringify({ progress: p }) + '\n') }
        })
        res.end(JSON.stringify({ result }) + '\n')
      } catch (err) {
        const e = isReplicantError(err) ? err : new ReplicantError(Codes.INTERNAL, (err as Error).message)
        res.end(JSON.stringify({ error: e.toJSON() }) + '\n')
      }
    })
    this.route('POST', /^\/v1\/gc$/, async (req, res) => {
      sendJson(res, 200, await this.node.collectGarbage(await readJson(req)))
    })
    this.route('POST', /^\/v1\/restore$/, async (req, res) => {
      // Spooled to disk and verified as it arrives (nothing touches the store before the whole
      // dump checks out), then applied from the spool: constant memory, two passes over the bytes.
      const dir = join(this.node.dataDir, 'tmp')
      await mkdir(dir, { recursive: true })
      const file = join(dir, tempName())
      try {
        const fh = await open(file, 'w')
        const upload = spooled(req, fh)
        let header
        try {
          header = (await verifyDump(upload.pieces)).header
        } catch (err) {
          await upload.drain().catch(() => {})
          throw err
        } finally {
          await fh.close()
        }
        sendJson(res, 200, await restoreDump(this.node.store, file, header))
      } finally {
        await rm(file, { force: true })
      }
    })
    this.route('GET', /^\/v1\/volumes\/([^/]+)\/snapshots$/, async (_req, res, [vol]) => {
      const v = await this.node.volumes.volume(decodeSegment(vol))
      sendJson(res, 200, { snapshots: await this.node.store.listSnapshots(v.name) })
    })
    this.route('POST', /^\/v1\/volumes\/([^/]+)\/snapshots$/, async (req, res, [vol]) => {
      const body = await readJson(req)
      if (body.name !== undefined && typeof body.name !== 'string') throw new InvalidInputError(Codes.BAD_REQUEST, 'name must be a string')
      const snap = await this.node.volumes.createSnapshot(decodeSegment(vol), body.name as string | undefined)
      // Nothing is copied at creation: the work done does not grow with the volume.
      sendJson(res, 201, { ...snap, recordsCopied: 0 })
    })
    this.route('DELETE', /^\/v1\/volumes\/([^/]+)\/snapshots\/([^/]+)$/, async (_req, res, [vol, name]) => {
      const v = await this.node.volumes.volume(decodeSegment(vol))
      sendJson(res, 200, { name: decodeSegment(name), ...await this.node.store.deleteSnapshot(v.name, decodeSegment(name)) })
    })
    this.route('PATCH', /^\/v1\/volumes\/([^/]+)$/, async (req, res, [vol]) => {
      const body = await readJson(req)
      if (body.writeMode === undefined) throw new InvalidInputError(Codes.BAD_REQUEST, 'nothing to change: send {"writeMode": "all" | "active"}')
      sendJson(res, 200, await this.node.setWriteMode(decodeSegment(vol), body.writeMode))
    })
    this.route('POST', /^\/v1\/volumes\/([^/]+)\/compact$/, async (req, res, [vol]) => {
      sendJson(res, 200, await this.node.compactLog(decodeSegment(vol), await readJson(req)))
    })
    this.route('DELETE', /^\/v1\/volumes\/([^/]+)\/replicas\/([^/]+)$/, async (_req, res, [vol, peer]) => {
      sendJson(res, 200, await this.node.removeReplica(decodeSegment(vol), decodeSegment(peer)))
    })
    this.route('GET', /^\/v1\/volumes\/([^/]+)\/files$/, async (req, res, [vol], url) => {
      const name = decodeSegment(vol)
      // Fail before the 200 header goes out: afterwards an error can only cut the connection.
      await this.node.volumes.volume(name)
      const prefix = normalizePrefix(url.searchParams.get('prefix') ?? undefined)
      const controller = new AbortController()
      res.once('close', () => controller.abort())
      const snapshot = url.searchParams.get('snapshot')
      if (snapshot !== null) await this.node.store.getSnapshot(name, snapshot)
      const files = snapshot !== null ? this.node.volumes.listFilesAt(name, snapshot, prefix) : this.node.volumes.listFiles(name, prefix, controller.signal)
      await sendJsonList(res, 'files', (async function * () { for await (const f of files) yield fileView(f) })())
    })
    const fileRoute = /^\/v1\/volumes\/([^/]+)\/files\/(.+)$/
    this.route('GET', fileRoute, async (req, res, params, url) => { await this.getFile(req, res, params, true, url) })
    this.route('HEAD', fileRoute, async (req, res, params, url) => { await this.getFile(req, res, params, false, url) })
    this.route('PUT', fileRoute, async (req, res, [vol, path]) => {
      const declared = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined
      let received = 0
      const body = (async function * () {
        for await (const part of req) { received += (part as Buffer).byteLength; yield part as Uint8Array }
        // A short body (client gone, proxy cut) must not become a short file.
        if (declared !== undefined && received !== declared) {
          throw new InvalidInputError(Codes.BAD_REQUEST, `body ended after ${received} of ${declared} bytes`)
        }
      })()
      const controller = new AbortController()
      req.once('aborted', () => controller.abort())
      const rec = await this.node.volumes.putFile(decodeSegment(vol), path.split('/').map(decodeSegment).join('/'), body, {
        mode: intHeader(req, 'x-replicant-mode', 8),
        mtime: intHeader(req, 'x-replicant-mtime'),
        signal: controller.signal
      })
      sendJson(res, 201, fileView(rec))
    })
    this.route('DELETE', fileRoute, async (_req, res, [vol, path]) => {
      const rec = await this.node.volumes.removeFile(decodeSegment(vol), path.split('/').map(decodeSegment).join('/'))
      sendJson(res, 200, { path: rec.path, deleted: true, seq: rec.seq, version: { ...rec.vv } })
    })
  }

  private route (method: string, pattern: RegExp, handler: Handler): void {
    this.routes.push({ method, pattern, handler })
  }

  private async getFile (req: IncomingMessage, res: ServerResponse, [vol, path]: string[], withBody: boolean, url: URL): Promise<void> {
    const name = decodeSegment(vol)
    const filePath = path.split('/').map(decodeSegment).join('/')
    const snapshot = url.searchParams.get('snapshot')
    const rec = snapshot !== null ? await this.node.volumes.statAt(name, snapshot, filePath) : await this.node.volumes.stat(name, filePath)
    const range = parseRange(req.headers.range, rec.size)
    const headers: Record<string, string | number> = {
      'content-type': 'application/octet-stream',
      'accept-ranges': 'bytes',
      'last-modified': new Date(rec.mtime).toUTCString(),
      etag: `"${rec.seq}-${rec.size}"`,
      'x-replicant-mode': rec.mode.toString(8),
      'x-replicant-mtime': rec.mtime
    }
    if (range !== undefined) {
      headers['content-range'] = `bytes ${range.start}-${range.end}/${rec.size}`
      headers['content-length'] = range.end - range.start + 1
    } else {
      headers['content-length'] = rec.size
    }
    if (!withBody) { res.writeHead(range !== undefined ? 206 : 200, headers); res.end(); return }
    const controller = new AbortController()
    res.once('close', () => controller.abort())
    // The first piece is read before the headers go out, so a chunk no member can supply
    // (a wannabe's read) is a JSON error, not a truncated 200.
    const body = this.node.volumes.readFile(name, rec, range, controller.signal)
    const first = await body.next()
    res.writeHead(range !== undefined ? 206 : 200, headers)
    async function * rest (): AsyncGenerator<Uint8Array> {
      if (first.done !== true) yield first.value
      yield * body
    }
    await pipeline(Readable.from(rest()), res)
  }

  private async dispatch (req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost')
      // Match on the raw path: URL parsing folds `..` segments, which must reach validation instead.
      const rawPath = (req.url ?? '/').split('?')[0]
      const allowed: string[] = []
      for (const r of this.routes) {
        const m = r.pattern.exec(rawPath)
        if (m === null) continue
        allowed.push(r.method)
        if (r.method !== req.method) continue
        await r.handler(req, res, m.slice(1), url)
        return
      }
      if (allowed.length > 0) throw new ReplicantError(Codes.METHOD_NOT_ALLOWED, `${req.method} is not allowed on ${rawPath}`, { allow: allowed })
      throw new NotFoundError(Codes.NO_ROUTE, `no route ${req.method} ${rawPath}`)
    } catch (err) {
      this.fail(req, res, err)
    }
  }

  private fail (req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const e = isReplicantError(err) ? err : new ReplicantError(Codes.INTERNAL, (err as Error)?.message ?? String(err))
    if (!isReplicantError(err) && (err as NodeJS.ErrnoException)?.code !== 'ERR_STREAM_PREMATURE_CLOSE') log.error('%s %s failed: %O', req.method, req.url, err)
    if (res.headersSent) { res.destroy(e); return }
    // Drain what is left of the request so the client sees the answer, not a reset.
    req.resume()
    const headers: Record<string, string> = {}
    // RFC 9110: a 405 lists the allowed methods; a 416 names the current length.
    const status = httpStatusOf(e)
    if (status === 405 && Array.isArray(e.details?.allow)) headers.allow = e.details.allow.join(', ')
    if (status === 416 && typeof e.details?.size === 'number') headers['content-range'] = `bytes */${e.details.size}`
    sendJson(res, status, { error: e.toJSON() }, headers)
  }

  async listen (host: string, port: number): Promise<{ host: string, port: number }> {
    this.server.listen(port, host)
    await once(this.server, 'listening')
    const addr = this.server.address()
    if (addr === null || typeof addr === 'string') throw new Error('HTTP API has no address')
    return { host: addr.address, port: addr.port }
  }

  async close (): Promise<void> {
    if (!this.server.listening) return
    const closed = once(this.server, 'close')
    this.server.close()
    this.server.closeAllConnections()
    await closed
  }
}
