/**
 * Who may use the HTTP API. Every request must name this node in its Host header (a page
 * that rebinds its own DNS name to 127.0.0.1 still sends its own name) and, unless its route
 * is public, carry the token: `Authorization: Bearer TOKEN`, or the `replicant_token` cookie
 * the status page sets (HttpOnly, SameSite=Strict: a cross-site request never carries it).
 */
import type { IncomingMessage } from 'node:http'
import { createHash, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import { ReplicantError, Codes } from '../core/errors.js'

export const TOKEN_COOKIE = 'replicant_token'

/** Failed token checks one client address may make in a window before it is answered 429. */
export const MAX_AUTH_FAILURES = 10
export const AUTH_FAILURE_WINDOW_MS = 60_000
/** Addresses tracked at once: the oldest is forgotten first (a flood of addresses cannot grow the map). */
export const MAX_TRACKED_CLIENTS = 1024

/** An address only this machine can reach. */
export function isLoopback (host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(h)
}

function sha256 (s: string): Buffer { return createHash('sha256').update(s).digest() }

/** A Host value as it appears in a header: lower case, IPv6 in brackets, `:port` always. */
function hostKey (host: string, port: number): string {
  const h = host.toLowerCase()
  return `${isIP(h) === 6 ? `[${h}]` : h}:${port}`
}

/** Failed token checks per client address, in fixed windows. */
class FailureCounter {
  private readonly seen = new Map<string, { since: number, count: number }>()

  /** Milliseconds until `addr` may fail again; 0 when it is under the limit. */
  retryAfter (addr: string, now: number): number {
    const e = this.seen.get(addr)
    if (e === undefined) return 0
    if (now - e.since >= AUTH_FAILURE_WINDOW_MS) { this.seen.delete(addr); return 0 }
    return e.count >= MAX_AUTH_FAILURES ? e.since + AUTH_FAILURE_WINDOW_MS - now : 0
  }

  fail (addr: string, now: number): void {
    const e = this.seen.get(addr)
    if (e !== undefined && now - e.since < AUTH_FAILURE_WINDOW_MS) { e.count++; return }
    this.seen.delete(addr)
    if (this.seen.size >= MAX_TRACKED_CLIENTS) this.seen.delete(this.seen.keys().next().value!)
    this.seen.set(addr, { since: now, count: 1 })
  }

  get size (): number { return this.seen.size }
}

export interface AccessOptions {
  token: string
  /** Further names the Host header may carry (`--api-allowed-hosts`), with or without `:port`. */
  allowedHosts?: string[]
}

export class ApiAccess {
  private readonly tokenHash: Buffer
  private readonly hosts = new Set<string>()
  private readonly failures = new FailureCounter()

  constructor (private readonly opts: AccessOptions) {
    this.tokenHash = sha256(opts.token)
  }

  /** Once the server listens: the Host values that name it (its address, the loopback names, the allowed ones). */
  bind (host: string, port: number, tls: boolean): void {
    const names = ['localhost', '127.0.0.1', '::1', ...(host === '0.0.0.0' || host === '::' ? [] : [host])]
    for (const n of names) this.hosts.add(hostKey(n, port))
    for (const a of this.opts.allowedHosts ?? []) {
      const withPort = /^(\[[^\]]*\]|[^:]*):\d+$/.test(a)
      this.hosts.add(withPort ? a.toLowerCase() : hostKey(a, port))
    }
    // A browser leaves out the scheme's default port.
    if (port === (tls ? 443 : 80)) for (const h of [...this.hosts]) this.hosts.add(h.replace(/:\d+$/, ''))
  }

  /** Refuses a request whose Host names something else (DNS rebinding) or nothing. */
  checkHost (req: IncomingMessage): void {
    const host = req.headers.host?.toLowerCase()
    if (host === undefined || !this.hosts.has(host)) {
      throw new ReplicantError(Codes.HOST_REFUSED, `Host ${host === undefined ? '(none)' : JSON.stringify(host)} does not name this node (start it with --api-allowed-hosts to accept other names)`)
    }
  }

  /** True when `token` is this node's, compared in constant time. */
  matches (token: string | undefined): boolean {
    return token !== undefined && timingSafeEqual(sha256(token), this.tokenHash)
  }

  /** Refuses a request without the right token: 401, or 429 once its address failed too often. */
  checkToken (req: IncomingMessage, given = tokenOf(req)): void {
    if (this.matches(given)) return
    const addr = req.socket.remoteAddress ?? '?'
    const now = Date.now()
    const wait = this.failures.retryAfter(addr, now)
    if (wait > 0) throw new ReplicantError(Codes.RATE_LIMITED, `too many requests without the right API token from ${addr}: retry later`, { retryAfter: Math.ceil(wait / 1000) })
    this.failures.fail(addr, now)
    throw new ReplicantError(Codes.UNAUTHORIZED, given === undefined
      ? 'the API needs a token: Authorization: Bearer TOKEN (`replicant api-token` shows it; the CLI sends it, or --token / REPLICANT_TOKEN with --api-url)'
      : 'wrong API token')
  }

  /** Client addresses with failures on record (bounded by MAX_TRACKED_CLIENTS). */
  get trackedClients (): number { return this.failures.size }
}

/** The token a request carries: its bearer token, else its cookie. */
export function tokenOf (req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization
  if (auth !== undefined) return /^Bearer +(\S+) *$/i.exec(auth)?.[1] ?? ''
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === TOKEN_COOKIE) return decodeURIComponentSafe(part.slice(eq + 1).trim())
  }
  return undefined
}

function decodeURIComponentSafe (s: string): string {
  try { return decodeURIComponent(s) } catch { return s }
}
