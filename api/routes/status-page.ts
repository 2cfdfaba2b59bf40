/**
 * The hook for the status page (a later issue): `GET /?token=TOKEN` checks the token once and
 * keeps it in an HttpOnly, SameSite=Strict cookie, then redirects to `/` so that the token
 * leaves the address bar and the history. The page itself does not exist yet: `/` answers
 * NO_ROUTE to a client that has the token.
 */
import type { Router } from '../router.js'
import { type ApiAccess, TOKEN_COOKIE, tokenOf } from '../access.js'
import { NotFoundError, Codes } from '../../core/errors.js'

export function statusPageRoutes (router: Router, access: ApiAccess, tls: boolean): void {
  router.add('GET', /^\/$/, (req, res, _params, url) => {
    const token = url.searchParams.get('token')
    access.checkToken(req, token ?? tokenOf(req))
    if (token === null) throw new NotFoundError(Codes.NO_ROUTE, 'no status page yet')
    const cookie = `${TOKEN_COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/${tls ? '; Secure' : ''}`
    res.writeHead(303, { location: '/', 'set-cookie': cookie, 'cache-control': 'no-store', 'content-length': 0 })
    res.end()
  }, { public: true }) // public only in that it checks the token itself (from the query or the cookie)
}
