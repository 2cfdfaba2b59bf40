/**
 * WebDAV (RFC 4918, class 1 and 2) at `/dav/VOLUME/` on the API address. Written on node:http
 * beside the JSON API (docs/WEBDAV.md says why no library). Same access rule as the API: the
 * Host check (http-api.ts), then the token, here also taken as the password of HTTP Basic (any
 * user name), since WebDAV clients (Finder, Windows, davfs2, litmus, rclone) speak Basic.
 * Errors are answered the WebDAV way (status, a short text or a DAV:error body), not as JSON.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ReplicantError, Codes, isReplicantError } from '../../core/errors.js'
import { logger } from '../../core/log.js'
import { httpStatusOf } from '../error-status.js'
import type { Router } from '../router.js'
import { tokenOf, type ApiAccess } from '../access.js'
import { DAV_ROUTE, targetOf, type DavTarget } from './dav-paths.js'
import { DavContext, type DavNode } from './dav-context.js'
import { DAV_METHODS, options, propfind, get } from './dav-read.js'
import { put, remove, mkcol, copyOrMove, proppatch } from './dav-write.js'
import { lock, unlock } from './dav-lock.js'

const log = logger('dav')

/** The API token from `Authorization: Basic` (its password), else as the JSON API takes it. */
export function davTokenOf (req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization
  const m = auth === undefined ? null : /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(auth)
  if (m !== null) {
    const pair = Buffer.from(m[1], 'base64').toString('utf8')
    const colon = pair.indexOf(':')
    return colon < 0 ? '' : pair.slice(colon + 1)
  }
  return tokenOf(req)
}

type Handler = (ctx: DavContext, req: IncomingMessage, res: ServerResponse, t: DavTarget) => Promise<void> | void

const HANDLERS: Record<string, Handler> = {
  OPTIONS: (_ctx, _req, res) => { options(res) },
  PROPFIND: propfind,
  PROPPATCH: proppatch,
  GET: async (ctx, req, res, t) => { await get(ctx, req, res, t, true) },
  HEAD: async (ctx, req, res, t) => { await get(ctx, req, res, t, false) },
  PUT: put,
  DELETE: remove,
  MKCOL: mkcol,
  COPY: async (ctx, req, res, t) => { await copyOrMove(ctx, req, res, t, false) },
  MOVE: async (ctx, req, res, t) => { await copyOrMove(ctx, req, res, t, true) },
  LOCK: lock,
  UNLOCK: unlock
}

/** Registers the WebDAV methods on `/dav/VOLUME/...`; returns the context (locks, dead properties) for tests. */
export function davRoutes (router: Router, access: ApiAccess, node: DavNode): DavContext {
  const ctx = new DavContext(node)
  for (const method of DAV_METHODS) {
    const handler = HANDLERS[method]
    // Public to the router only because the token is checked here, Basic included.
    router.add(method, DAV_ROUTE, async (req, res, [vol, rest]) => {
      try {
        const given = davTokenOf(req)
        // WebDAV clients (neon: litmus, davfs2; Windows) ask without credentials first and send
        // them after the 401: that round trip guesses nothing, so it is not counted as a
        // failure (the per-address limit would otherwise stop a client after a few sessions).
        if (given === undefined) throw new ReplicantError(Codes.UNAUTHORIZED, 'WebDAV needs the API token: as the password of HTTP Basic (any user name), or Authorization: Bearer TOKEN')
        access.checkToken(req, given)
        const target = targetOf(vol, rest)
        // An unknown (or removed, or offline) volume is told before anything else.
        await ctx.volumes.volume(target.volume)
        await handler(ctx, req, res, target)
      } catch (err) {
        fail(req, res, err)
      }
    }, { public: true })
  }
  return ctx
}

function fail (req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const e = isReplicantError(err) ? err : new ReplicantError(Codes.INTERNAL, (err as Error | undefined)?.message ?? String(err))
  if (!isReplicantError(err) && (err as NodeJS.ErrnoException | undefined)?.code !== 'ERR_STREAM_PREMATURE_CLOSE') log.error('%s %s failed: %O', req.method, req.url, err)
  if (res.headersSent) { res.destroy(e); return }
  req.resume()
  const status = httpStatusOf(e)
  const headers: Record<string, string | string[] | number> = {}
  // Both schemes are offered; clients pick the one they speak (WebDAV clients: Basic).
  if (status === 401) headers['www-authenticate'] = ['Bearer realm="replicant"', 'Basic realm="replicant", charset="UTF-8"']
  const allow = e.details?.allow
  if (status === 405 && Array.isArray(allow)) headers.allow = allow.join(', ')
  if (status === 416 && typeof e.details?.size === 'number') headers['content-range'] = `bytes */${e.details.size}`
  if (status === 429 && typeof e.details?.retryAfter === 'number') headers['retry-after'] = String(e.details.retryAfter)
  const davError = e.details?.davError
  // A precondition RFC 4918 names is answered as its DAV:error element; anything else as the JSON API answers it.
  const body = typeof davError === 'string'
    ? `<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:${davError}/></D:error>`
    : JSON.stringify({ error: e.toJSON() })
  headers['content-type'] = typeof davError === 'string' ? 'application/xml; charset=utf-8' : 'application/json'
  headers['content-length'] = Buffer.byteLength(body)
  res.writeHead(status, headers)
  res.end(req.method === 'HEAD' ? undefined : body)
}
