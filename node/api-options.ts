/**
 * How a node's HTTP API is exposed: where it listens, its token, TLS. Off loopback the API
 * must be served over TLS, or the operator must say `--api-insecure`: a token sent in clear
 * over a network is a token given away.
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { ReplicantError, InvalidInputError, Codes } from '../core/errors.js'
import { isLoopback } from '../api/access.js'
import { loadOrCreateApiToken } from '../api/api-token.js'
import { DEFAULTS } from '../config/defaults.js'
import { createSecureContext } from 'node:tls'

export interface ApiExposureOptions {
  /** HOST:PORT of the local HTTP API; port 0 picks a free one. false: no HTTP API. */
  api?: string | false
  /** The API token (tests, topologies); default: the data dir's `api.token`, created if absent. */
  apiToken?: string
  /** Serve the API over TLS: PEM certificate and key files (`--api-tls-cert`, `--api-tls-key`). */
  apiTls?: { cert: string, key: string }
  /** Allow the API off loopback without TLS (`--api-insecure`). */
  apiInsecure?: boolean
  /** Further names the Host header may carry (`--api-allowed-hosts`): needed off loopback. */
  apiAllowedHosts?: string[]
}

export function parseHostPort (s: string): { host: string, port: number } {
  const m = /^(.*):(\d+)$/.exec(s)
  if (m === null) throw new InvalidInputError(Codes.BAD_REQUEST, `expected HOST:PORT, got '${s}'`)
  const port = Number(m[2])
  if (port > 65535) throw new InvalidInputError(Codes.BAD_REQUEST, `port out of range in '${s}'`)
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port }
}

/** What the node needs to build and start its API. */
export interface PreparedApi {
  host: string
  port: number
  token: string
  allowedHosts: string[]
  tls?: { cert: Buffer, key: Buffer, certFile: string }
}

/** The listen address, checked before anything is created: off loopback needs TLS or --api-insecure. */
export function apiAddress (opts: ApiExposureOptions): { host: string, port: number } | undefined {
  if (opts.api === false) return undefined
  const addr = parseHostPort(opts.api ?? `${DEFAULTS.apiHost}:${DEFAULTS.apiPort}`)
  if (!isLoopback(addr.host) && opts.apiTls === undefined && opts.apiInsecure !== true) {
    throw new ReplicantError(Codes.API_INSECURE, `the HTTP API address ${opts.api as string} is off loopback: serve it over TLS (--api-tls-cert FILE --api-tls-key FILE) or accept clear text with --api-insecure`)
  }
  return addr
}

/** Reads the TLS files and loads (or creates) the token, once the data dir exists. */
export async function prepareApi (dataDir: string, opts: ApiExposureOptions): Promise<PreparedApi | undefined> {
  const addr = apiAddress(opts)
  if (addr === undefined) return undefined
  const { token } = await loadOrCreateApiToken(dataDir, opts.apiToken)
  let tls: PreparedApi['tls']
  if (opts.apiTls !== undefined) {
    const read = async (file: string, what: string): Promise<Buffer> => await readFile(file).catch((err: NodeJS.ErrnoException) => {
      throw new ReplicantError(Codes.BAD_REQUEST, `cannot read the API TLS ${what} ${file}: ${err.code ?? err.message}`)
    })
    tls = { cert: await read(opts.apiTls.cert, 'certificate'), key: await read(opts.apiTls.key, 'key'), certFile: resolve(opts.apiTls.cert) }
    // Checked here, so that a bad pair is one line at start, not an OpenSSL stack later.
    try { createSecureContext({ cert: tls.cert, key: tls.key }) } catch (err) {
      throw new ReplicantError(Codes.BAD_REQUEST, `the API TLS certificate ${opts.apiTls.cert} and key ${opts.apiTls.key} do not make a usable pair: ${(err as Error).message}`)
    }
  }
  return { ...addr, token, allowedHosts: opts.apiAllowedHosts ?? [], ...(tls !== undefined ? { tls } : {}) }
}
