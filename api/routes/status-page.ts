/**
 * The status page at `/` (api/ui/status.html: one static HTML file with its script, no build
 * step). `GET /?token=TOKEN` checks the token once and keeps it in an HttpOnly,
 * SameSite=Strict cookie, then redirects to `/` so that the token leaves the address bar and
 * the history; `/` itself then needs that cookie (or a bearer token) like any route. The page
 * reads `/v1/status` and `/v1/events` with the cookie. Its script and style are allowed by
 * hash in a Content-Security-Policy, and it may not be framed.
 */
import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import type { Router } from '../router.js'
import { type ApiAccess, TOKEN_COOKIE, tokenOf } from '../access.js'

/** From dist/api/routes/ (or api/routes/ under a loader) to the package's api/ui/status.html. */
const PAGE_URLS = [new URL('../../../api/ui/status.html', import.meta.url), new URL('../ui/status.html', import.meta.url)]

interface Page { html: Buffer, csp: string }
let page: Promise<Page> | undefined

function hashOf (html: string, tag: string): string {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(html)
  return m === null ? '' : `'sha256-${createHash('sha256').update(m[1]).digest('base64')}'`
}

async function loadPage (): Promise<Page> {
  let lastErr: unknown
  for (const u of PAGE_URLS) {
    try {
      const html = await readFile(u, 'utf8')
      const csp = `default-src 'self'; script-src ${hashOf(html, 'script')}; style-src ${hashOf(html, 'style')}; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`
      return { html: Buffer.from(html), csp }
    } catch (err) { lastErr = err }
  }
  throw lastErr
}

export function statusPageRoutes (router: Router, access: ApiAccess, tls: boolean): void {
  router.add('GET', /^\/$/, async (req, res, _params, url) => {
    const token = url.searchParams.get('token')
    access.checkToken(req, token ?? tokenOf(req))
    if (token !== null) {
      const cookie = `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/${tls ? '; Secure' : ''}`
      res.writeHead(303, { location: '/', 'set-cookie': cookie, 'cache-control': 'no-store', 'content-length': 0 })
      res.end()
      return
    }
    page ??= loadPage().catch((err: unknown) => { page = undefined; throw err })
    const { html, csp } = await page
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': html.byteLength,
      'cache-control': 'no-store',
      'content-security-policy': csp,
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer'
    })
    res.end(html)
  }, { public: true }) // public only in that it checks the token itself (from the query or the cookie)
}
