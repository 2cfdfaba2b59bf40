import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import { once } from 'node:events'
import { ReplicantError, Codes, isReplicantError } from '../core/errors.js'
import { logger } from '../core/log.js'
import { httpStatusOf } from './error-status.js'
import { sendJson } from './respond.js'
import { Router, routeLabel, type Route } from './router.js'
import { ApiAccess } from './access.js'
import type { ApiNode } from './node-api.js'
import { statusRoutes } from './routes/status.js'
import { statusPageRoutes } from './routes/status-page.js'
import { faultRoutes } from './routes/faults.js'
import { volumeRoutes } from './routes/volumes.js'
import { membershipRoutes } from './routes/membership.js'
import { snapshotRoutes } from './routes/snapshots.js'
import { adminRoutes } from './routes/admin.js'
import { fileRoutes } from './routes/files.js'
import { metricsRoutes } from './routes/metrics.js'
import { eventRoutes } from './routes/events.js'
import { conflictRoutes } from './routes/conflicts.js'
import { davRoutes } from './dav/dav-routes.js'

export type { ApiNode } from './node-api.js'

const log = logger('http')

export interface HttpApiOptions {
  /** The token every request must carry (api/api-token.ts). */
  token: string
  /** Further names the Host header may carry (`--api-allowed-hosts`). */
  allowedHosts?: string[]
  /** Served over TLS (node:https) with this certificate and key (PEM). */
  tls?: { cert: string | Buffer, key: string | Buffer }
  /** A node started for testing: only then do the fault routes (/v1/faults/*) exist. */
  testing?: boolean
  /** `GET /metrics` without the token (`--metrics-public`): for a Prometheus that cannot send one. */
  metricsPublic?: boolean
  /** Told of every answered request: its route (a pattern, never a path), method, status, seconds. */
  observe?: (route: string, method: string, status: number, seconds: number) => void
}

/**
 * The node's local HTTP API; the CLI is one of its clients. Every request passes the Host
 * check, then the token check (api/access.ts); no CORS header is ever sent, so a browser
 * page of another origin can neither read an answer nor pass a preflight.
 */
export class HttpApi {
  private readonly server: Server
  private readonly router = new Router()
  private readonly access: ApiAccess

  constructor (node: ApiNode, private readonly options: HttpApiOptions) {
    this.access = new ApiAccess({ token: options.token, allowedHosts: options.allowedHosts })
    const handle = (req: IncomingMessage, res: ServerResponse): void => { void this.dispatch(req, res) }
    this.server = options.tls !== undefined ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }, handle) : createServer(handle)
    statusPageRoutes(this.router, this.access, options.tls !== undefined)
    metricsRoutes(this.router, node.ops, options.metricsPublic === true)
    statusRoutes(this.router, node)
    eventRoutes(this.router, node.ops)
    conflictRoutes(this.router, node.ops)
    // Without testing the fault routes answer NO_ROUTE, like any unknown route.
    if (options.testing === true) faultRoutes(this.router, node)
    volumeRoutes(this.router, node)
    membershipRoutes(this.router, node)
    snapshotRoutes(this.router, node)
    adminRoutes(this.router, node)
    fileRoutes(this.router, node)
    // WebDAV at /dav/VOLUME/ (api/dav/): checks the token itself, Basic included.
    davRoutes(this.router, this.access, node)
  }

  /** Every route this API answers (tests check each one's access rules). */
  routes (): Route[] { return this.router.table() }

  private async dispatch (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const observe = this.options.observe
    let route = 'unmatched'
    if (observe !== undefined) {
      const started = performance.now()
      res.once('close', () => { observe(route, req.method ?? '?', res.statusCode, (performance.now() - started) / 1000) })
    }
    try {
      this.access.checkHost(req)
      await this.router.dispatch(req, res, (r) => { this.access.checkToken(r) }, (r) => { route = routeLabel(r.pattern) })
    } catch (err) {
      this.fail(req, res, err)
    }
  }

  private fail (req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const e = isReplicantError(err) ? err : new ReplicantError(Codes.INTERNAL, (err as Error | undefined)?.message ?? String(err))
    if (!isReplicantError(err) && (err as NodeJS.ErrnoException | undefined)?.code !== 'ERR_STREAM_PREMATURE_CLOSE') log.error('%s %s failed: %O', req.method, req.url, err)
    if (res.headersSent) {
      // The status line is gone: the only way left to say "this body is incomplete" is a reset,
      // which the client sees as ECONNRESET; say here why.
      log.error('%s %s failed after its answer began (connection reset): %s %s', req.method, req.url, e.code, e.message)
      res.destroy(e)
      return
    }
    // Drain what is left of the request so the client sees the answer, not a reset.
    req.resume()
    const headers: Record<string, string> = {}
    // RFC 9110: a 405 lists the allowed methods; a 416 names the current length; a 401 the
    // scheme (RFC 6750). RFC 6585: a 429 says when to come back.
    const status = httpStatusOf(e)
    const allow = e.details?.allow
    const size = e.details?.size
    const retryAfter = e.details?.retryAfter
    if (status === 405 && Array.isArray(allow)) headers.allow = allow.join(', ')
    if (status === 416 && typeof size === 'number') headers['content-range'] = `bytes */${size}`
    if (status === 401) headers['www-authenticate'] = 'Bearer realm="replicant"'
    if (status === 429 && typeof retryAfter === 'number') headers['retry-after'] = String(retryAfter)
    sendJson(res, status, { error: e.toJSON() }, headers)
  }

  /** Listens on `host:port` (port 0: a free one); returns the URL a local client dials. */
  async listen (host: string, port: number): Promise<{ host: string, port: number, url: string }> {
    this.server.listen(port, host)
    await once(this.server, 'listening')
    const addr = this.server.address()
    if (addr === null || typeof addr === 'string') throw new Error('HTTP API has no address')
    const tls = this.options.tls !== undefined
    this.access.bind(addr.address, addr.port, tls)
    // A wildcard address is dialled on loopback (and its Host then names loopback, which the check accepts).
    const dial = addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address === '::' ? '::1' : addr.address
    const h = dial.includes(':') ? `[${dial}]` : dial
    return { host: addr.address, port: addr.port, url: `${tls ? 'https' : 'http'}://${h}:${addr.port}` }
  }

  async close (): Promise<void> {
    if (!this.server.listening) return
    const closed = once(this.server, 'close')
    this.server.close()
    this.server.closeAllConnections()
    await closed
  }
}
