/**
 * The HTTP API fuzzer: raw requests on a TCP socket (so malformed ones reach the server as
 * written) built from the router's table: random methods and routes, paths with traversal
 * and bad encodings, bad JSON, wrong content types, huge headers and bodies, bad Range
 * headers, lying Content-Length, dribbled and cut-off requests. A 500 (an untyped error) or a
 * connection the server never answers nor closes is a finding.
 */
import { connect } from 'node:net'
import fc from 'fast-check'
import type { FuzzTarget } from './fuzz-target.js'
import type { Fuzzer, Outcome } from './fuzz-run.js'
import type { SavedInput } from './fuzz-findings.js'

export interface HttpCase { raw: Uint8Array, cuts: number[], delays: number[], reset: boolean, note: string }

/** Volumes the fuzz may create, change and drop (never the one the member check reads). */
const POOL = ['fz-h1', 'fz-h2']
const REPLY_CAP = 16 * 1024 * 1024

const enc = encodeURIComponent
const badSegments = ['..', '.', '%2e%2e', '%2F', '%2f..%2f', '%00', '%ff', '%c0%ae%c0%ae', '%', '%zz', '%E2%80%AE', 'a'.repeat(300), enc('café'), enc('cafe\u0301'), '', ' ', '%20', '\\', '*']
const badPaths = ['fz/x', 'fz/%2e%2e/%2e%2e/etc/passwd', '../../etc/passwd', '..%2f..%2fetc%2fpasswd', 'fz//a', 'fz/./a', 'fz/%00a', 'a'.repeat(5000), `fz/${enc('caf\u00e9')}`, `fz/${enc('cafe\u0301')}`, `fz/${enc('\u202eevil')}`, 'fz/a%2fb', '%', 'fz/']
/** Files that exist: read (whole and by range) but never written or deleted by the fuzz. */
const realFiles = ['health/file', 'data/f1', 'data/f5', 'data/', 'data']

function segment (realVolume: string, mayTouchReal: boolean): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: mayTouchReal ? fc.constant(realVolume) : fc.constantFrom(...POOL) },
    { weight: 2, arbitrary: fc.constantFrom(...POOL) },
    { weight: 2, arbitrary: fc.constantFrom(...badSegments) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30, unit: 'binary' }).map(enc) }
  )
}

/** [method, path] from the router's table; routes that drop or rewrite a volume's membership get pool volumes only. */
function route (real: string): fc.Arbitrary<[string, string]> {
  const readOnly = segment(real, true)
  const pool = segment(real, false)
  const file = fc.oneof(fc.constantFrom(...badPaths), fc.string({ maxLength: 40 }).map(s => 'fz/' + enc(s)))
  const readable = fc.oneof(file, fc.constantFrom(...realFiles))
  const snap = fc.oneof(fc.constantFrom('s1', 's2', '..', '%00', 'a'.repeat(200)), fc.string({ maxLength: 20 }).map(enc))
  const query = fc.oneof({ weight: 5, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('?prefix=/', '?prefix=..', '?prefix=%ff', '?snapshot=s1', '?snapshot=', '?snapshot=%00', '?a=b&a=c', '?' + 'x'.repeat(5000)) })
  const table: Array<fc.Arbitrary<[string, string]>> = [
    fc.constantFrom<[string, string]>(['GET', '/v1/status'], ['GET', '/v1/peers'], ['GET', '/v1/volumes'], ['POST', '/v1/volumes'], ['POST', '/v1/gc'], ['POST', '/v1/restore'], ['GET', '/v1/faults'], ['POST', '/v1/faults/link']),
    fc.tuple(fc.constantFrom('GET', 'PATCH', 'HEAD'), readOnly).map(([m, v]) => [m, `/v1/volumes/${v}`]),
    pool.map(v => ['DELETE', `/v1/volumes/${v}`]),
    fc.tuple(readOnly, query).map(([v, q]) => ['GET', `/v1/volumes/${v}/files${q}`]),
    fc.tuple(fc.constantFrom('GET', 'HEAD'), readOnly, readable, query).map(([m, v, p, q]) => [m, `/v1/volumes/${v}/files/${p}${q}`]),
    fc.tuple(fc.constantFrom('PUT', 'DELETE'), readOnly, file, query).map(([m, v, p, q]) => [m, `/v1/volumes/${v}/files/${p}${q}`]),
    fc.tuple(readOnly, fc.constantFrom('compact', 'snapshots', 'dump')).map(([v, r]) => [r === 'dump' ? 'GET' : 'POST', `/v1/volumes/${v}/${r}`]),
    fc.tuple(pool, fc.constantFrom('replicas', 'accept', 'move')).map(([v, r]) => ['POST', `/v1/volumes/${v}/${r}`]),
    fc.tuple(pool, fc.string({ maxLength: 60 })).map(([v, p]) => ['DELETE', `/v1/volumes/${v}/replicas/${enc(p)}`]),
    readOnly.map(v => ['GET', `/v1/volumes/${v}/snapshots`]),
    fc.tuple(readOnly, snap).map(([v, s]) => ['DELETE', `/v1/volumes/${v}/snapshots/${s}`]),
    // Anything else: methods and paths the table does not have.
    fc.tuple(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT', 'PROPFIND', 'get', 'X'.repeat(100)), fc.constantFrom('/', '/v1', '/v1/', '/v2/status', '//v1/status', '/v1/status/', '/v1/../v1/status', '/v1/%2e%2e/status', '*', 'http://evil/v1/status', '/v1/volumes//files'))
  ]
  return fc.oneof(...table)
}

const jsonBody = (): fc.Arbitrary<string> => fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...POOL), fc.jsonValue({ maxDepth: 2 })).map(([name, extra]) => JSON.stringify({ name, replicas: [], writeMode: 'active', x: extra })) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }).map(v => JSON.stringify(v)) },
  { weight: 2, arbitrary: fc.constantFrom('{', '{"a":', 'null', '[]', '"x"', '1e999', '{"__proto__":{"x":1}}', '{"writeMode":"all","upto":-1}', '{"youngSeconds":1e308,"repack":true}', '{"peers":["x"]}', '\u0000', '\ufeff{}') },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 200_000 }).map(n => '['.repeat(n) + ']'.repeat(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 60_000, max: 2_000_000 }).map(n => JSON.stringify({ name: 'fz-h1', pad: 'a'.repeat(n) })) }
)

const headerSets = fc.record({
  contentType: fc.constantFrom(undefined, 'application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', '', 'a'.repeat(500)),
  range: fc.constantFrom(undefined, 'bytes=0-10', 'bytes=-5', 'bytes=5-', 'bytes=10-5', 'bytes=0-99999999999999999999', 'bytes=a-b', 'bytes=0-1,2-3', 'items=0-1', 'bytes=', 'bytes=-0', 'bytes=0-0', 'bytes=' + '1'.repeat(400) + '-'),
  extra: fc.constantFrom<Array<[string, string]>>([], [['x-replicant-mode', '777']], [['x-replicant-mode', '-1']], [['x-replicant-mtime', '1e20']], [['x-replicant-mtime', '0x10']], [['origin', 'http://evil']], [['expect', '100-continue']], [['x-big', 'a'.repeat(20_000)]], [['x-big', 'a'.repeat(90_000)]],
    Array.from({ length: 300 }, (_, i) => [`x-h${i}`, 'v'] as [string, string]), [['transfer-encoding', 'chunked']], [['host', 'evil.example']], [['content-length', '5'], ['content-length', '6']]),
  length: fc.constantFrom('right', 'right', 'right', 'none', 'short', 'long', 'huge', 'negative'),
  body: fc.oneof({ weight: 4, arbitrary: jsonBody() }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 1_000_000 }).map(n => 'b'.repeat(n)) })
})

interface HeaderSet { contentType: string | undefined, range: string | undefined, extra: Array<[string, string]>, length: string, body: string }

function requestBytes (method: string, path: string, h: HeaderSet, host: string, token?: string): Uint8Array {
  const body = Buffer.from(h.body)
  const lines = [`${method} ${path} HTTP/1.1`, `host: ${host}`, 'connection: close']
  if (token !== undefined) lines.push(`authorization: Bearer ${token}`)
  if (h.contentType !== undefined) lines.push(`content-type: ${h.contentType}`)
  if (h.range !== undefined) lines.push(`range: ${h.range}`)
  for (const [k, v] of h.extra) lines.push(`${k}: ${v}`)
  const chunked = h.extra.some(([k]) => k === 'transfer-encoding')
  const len = ({ right: body.byteLength, none: undefined, short: Math.max(0, body.byteLength - 3), long: body.byteLength + 100, huge: 2 ** 53, negative: -1 } as Record<string, number | undefined>)[h.length]
  if (!chunked && len !== undefined && !h.extra.some(([k]) => k === 'content-length')) lines.push(`content-length: ${len}`)
  const head = Buffer.from(lines.join('\r\n') + '\r\n\r\n')
  // A chunked body with a lying chunk size now and then.
  const payload = chunked ? Buffer.from(`${(body.byteLength + (h.length === 'long' ? 7 : 0)).toString(16)}\r\n${h.body}\r\n0\r\n\r\n`) : body
  return new Uint8Array(Buffer.concat([head, payload]))
}

export function httpCase (real: string, host: string, token?: string): fc.Arbitrary<HttpCase> {
  return fc.tuple(route(real), headerSets).chain(([[method, path], h]) => {
    const raw = requestBytes(method, path, h, host, token)
    const dribble = fc.oneof(
      { weight: 12, arbitrary: fc.constant({ cuts: [] as number[], delays: [] as number[], reset: false }) },
      {
        weight: 1,
        arbitrary: fc.tuple(fc.array(fc.tuple(fc.nat({ max: raw.byteLength - 1 }), fc.nat({ max: 30 })), { minLength: 1, maxLength: 8 }), fc.boolean())
          .map(([ps, reset]) => { const s = ps.sort((a, b) => a[0] - b[0]); return { cuts: s.map(p => p[0]), delays: s.map(p => p[1]), reset } })
      }
    )
    return dribble.map(d => ({ raw, ...d, note: `${method} ${path.slice(0, 120)} ${h.length} ${h.contentType ?? ''} ${h.range ?? ''} ${d.cuts.length > 0 ? `${d.cuts.length + 1} pieces` : ''}${d.reset ? ' reset' : ''}`.trim() }))
  })
}

export function httpCaseOf (s: NonNullable<SavedInput['http']>): HttpCase {
  return { raw: new Uint8Array(Buffer.from(s.raw, 'base64')), cuts: s.cuts, delays: s.delays, reset: s.reset, note: s.note }
}

/** Sends one raw request; resolves with the status (0: none) once the server closed the connection. */
export async function sendRaw (port: number, c: HttpCase, hungMs: number): Promise<{ status: number, body: string, hung: boolean }> {
  const sock = connect({ host: '127.0.0.1', port })
  sock.on('error', () => {})
  let head = ''
  let bytes = 0
  const done = new Promise<void>(resolve => {
    sock.on('data', (b: Buffer) => {
      if (head.length < 4096) head += b.toString('latin1', 0, Math.min(b.byteLength, 4096))
      bytes += b.byteLength
      if (bytes > REPLY_CAP) sock.destroy()
    })
    sock.on('close', () => { resolve() })
  })
  const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))
  let from = 0
  for (let i = 0; i <= c.cuts.length && !sock.destroyed; i++) {
    const to = i < c.cuts.length ? Math.max(from, c.cuts[i]) : c.raw.byteLength
    if (to > from) sock.write(c.raw.subarray(from, to))
    from = to
    if ((c.delays[i] ?? 0) > 0) await sleep(c.delays[i])
  }
  if (c.reset) sock.destroy()
  else sock.end()
  let timer: NodeJS.Timeout | undefined
  const hung = await Promise.race([done.then(() => false), new Promise<boolean>(resolve => { timer = setTimeout(() => resolve(true), hungMs) })])
  clearTimeout(timer)
  if (hung) sock.destroy()
  const m = /^HTTP\/1\.1 (\d{3})/.exec(head)
  return { status: m !== null ? Number(m[1]) : 0, body: head.split('\r\n\r\n')[1] ?? '', hung }
}

export function httpFuzzer (target: FuzzTarget, opts: { token?: string } = {}): Fuzzer<HttpCase> {
  const url = new URL(target.node.apiUrl ?? 'http://127.0.0.1:0')
  const port = Number(url.port)
  return {
    name: 'http',
    // The node's own token by default, so the cases reach the routes and not only the access check.
    arb: httpCase(target.ctx.volume, url.host, opts.token ?? target.node.apiToken),
    units: () => 1,
    saved: c => ({ http: { raw: Buffer.from(c.raw).toString('base64'), note: c.note, cuts: c.cuts, delays: c.delays, reset: c.reset } }),
    run: async (c, _mode, o): Promise<Outcome> => {
      const r = await sendRaw(port, c, o.hungMs)
      if (r.hung) return { problem: { kind: 'hung', message: `the API neither answered nor closed within ${o.hungMs} ms: ${c.note}` } }
      if (r.status === 500) return { problem: { kind: 'http-5xx', message: `500 for ${c.note}: ${r.body.slice(0, 300)}` } }
      return {}
    }
  }
}
