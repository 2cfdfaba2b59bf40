import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { once } from 'node:events'
import { ReplicantError, Codes, isReplicantError } from '../core/errors.js'
import { logger } from '../core/log.js'
import { httpStatusOf } from './error-status.js'
import { sendJson } from './respond.js'
import { Router } from './router.js'
import type { ApiNode } from './node-api.js'
import { statusRoutes } from './routes/status.js'
import { faultRoutes } from './routes/faults.js'
import { volumeRoutes } from './routes/volumes.js'
import { membershipRoutes } from './routes/membership.js'
import { snapshotRoutes } from './routes/snapshots.js'
import { adminRoutes } from './routes/admin.js'
import { fileRoutes } from './routes/files.js'

export type { ApiNode } from './node-api.js'

const log = logger('http')

export interface HttpApiOptions {
  /** A node started for testing: only then do the fault routes (/v1/faults/*) exist. */
  testing?: boolean
}

/** The node's local HTTP API; the CLI is one of its clients. */
export class HttpApi {
  private readonly server: Server
  private readonly router = new Router()

  constructor (node: ApiNode, options: HttpApiOptions = {}) {
    this.server = createServer((req, res) => { void this.dispatch(req, res) })
    statusRoutes(this.router, node)
    // Without testing the fault routes answer NO_ROUTE, like any unknown route.
    if (options.testing === true) faultRoutes(this.router, node)
    volumeRoutes(this.router, node)
    membershipRoutes(this.router, node)
    snapshotRoutes(this.router, node)
    adminRoutes(this.router, node)
    fileRoutes(this.router, node)
  }

  private async dispatch (req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.router.dispatch(req, res)
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
    // RFC 9110: a 405 lists the allowed methods; a 416 names the current length.
    const status = httpStatusOf(e)
    const allow = e.details?.allow
    const size = e.details?.size
    if (status === 405 && Array.isArray(allow)) headers.allow = allow.join(', ')
    if (status === 416 && typeof size === 'number') headers['content-range'] = `bytes */${size}`
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
