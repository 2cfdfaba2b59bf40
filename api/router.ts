/** Routes matched on the raw path, in the order added; 405 for a known path, 404 otherwise. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ReplicantError, NotFoundError, Codes } from '../core/errors.js'

export type Handler = (req: IncomingMessage, res: ServerResponse, params: string[], url: URL) => Promise<void> | void

export interface RouteOptions {
  /**
   * Answered without the API token (the Host check still applies): `GET /metrics` when the
   * node runs with --metrics-public, and the status page's `/` (which checks the token itself).
   */
  public?: boolean
}

export interface Route { readonly method: string, readonly pattern: RegExp, readonly public: boolean }

interface Entry extends Route { handler: Handler }

/** Checks a request's token; called before any route that is not public, and before a 404 or 405. */
export type Authorize = (req: IncomingMessage) => void

export class Router {
  private readonly routes: Entry[] = []

  add (method: string, pattern: RegExp, handler: Handler, opts: RouteOptions = {}): void {
    this.routes.push({ method, pattern, handler, public: opts.public === true })
  }

  /** Every route, in order (tests walk it, so that a new route is checked for access too). */
  table (): Route[] {
    return this.routes.map(({ method, pattern, public: open }) => ({ method, pattern, public: open }))
  }

  /** `onRoute` learns the route matched (before its handler runs), for the HTTP metrics. */
  async dispatch (req: IncomingMessage, res: ServerResponse, authorize: Authorize, onRoute?: (r: Route) => void): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost')
    // Match on the raw path: URL parsing folds `..` segments, which must reach validation instead.
    const rawPath = (req.url ?? '/').split('?')[0]
    const allowed: string[] = []
    for (const r of this.routes) {
      const m = r.pattern.exec(rawPath)
      if (m === null) continue
      allowed.push(r.method)
      if (r.method !== req.method) continue
      onRoute?.(r)
      if (!r.public) authorize(req)
      await r.handler(req, res, m.slice(1), url)
      return
    }
    // Which paths exist is not told without the token either.
    authorize(req)
    if (allowed.length > 0) throw new ReplicantError(Codes.METHOD_NOT_ALLOWED, `${req.method} is not allowed on ${rawPath}`, { allow: allowed })
    throw new NotFoundError(Codes.NO_ROUTE, `no route ${req.method} ${rawPath}`)
  }
}

/** A route's pattern as a metrics label: `/v1/volumes/:param/files/*`. */
export function routeLabel (pattern: RegExp): string {
  return pattern.source.replace(/^\^/, '').replace(/\$$/, '').replace(/\(\.[*+]\)/g, '*').replace(/\([^)]*\)/g, ':param').replace(/\\\//g, '/')
}
