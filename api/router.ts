/** Routes matched on the raw path, in the order added; 405 for a known path, 404 otherwise. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ReplicantError, NotFoundError, Codes } from '../core/errors.js'

export type Handler = (req: IncomingMessage, res: ServerResponse, params: string[], url: URL) => Promise<void> | void

interface Route { method: string, pattern: RegExp, handler: Handler }

export class Router {
  private readonly routes: Route[] = []

  add (method: string, pattern: RegExp, handler: Handler): void {
    this.routes.push({ method, pattern, handler })
  }

  async dispatch (req: IncomingMessage, res: ServerResponse): Promise<void> {
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
  }
}
