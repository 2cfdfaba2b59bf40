/**
 * HTTP API access control (issue 14): the token on every route, the Host check (DNS
 * rebinding), JSON only as application/json (no cross-site simple POST), no CORS, the
 * failure rate limit, the status page's cookie, and TLS or --api-insecure off loopback.
 * The route table is walked, so a route added later is checked too.
 */
import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { stat, readFile, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { connect } from 'node:net'
import { HttpApi, type ApiNode } from '../api/http-api.js'
import { API_TOKEN_FILE } from '../api/api-token.js'
import { ApiAccess, MAX_AUTH_FAILURES, MAX_TRACKED_CLIENTS } from '../api/access.js'
import { get as httpGet, type IncomingMessage } from 'node:http'
import type { Route } from '../api/router.js'
import { startNode, httpRequest, runCli, spawnNodeProcess, tmpDir, type HttpResult } from './helpers.js'

const WRONG = 'not-the-token-of-this-node'

/** A path the route's pattern matches: each group replaced by a plain segment (or its first alternative). */
function samplePath (r: Route): string {
  const path = r.pattern.source
    .replace(/^\^/, '').replace(/\$$/, '')
    .replace(/\(([a-z]+)(\|[a-z]+)+\)/g, '$1')
    .replace(/\(\[\^\/\]\+\)/g, 'x')
    .replace(/\(\.[+*]\)/g, 'x')
    .replace(/\\\//g, '/')
  if (!r.pattern.test(path)) throw new Error(`cannot make a sample path for ${r.method} ${r.pattern.source}: teach samplePath its pattern`)
  return path
}

/** Every route a node started for testing answers (fault routes included). */
function routeTable (): Route[] {
  return new HttpApi({} as unknown as ApiNode, { token: 'x'.repeat(32), testing: true }).routes()
}

/** The status of a GET whose body never ends (an event stream): read the status line, then hang up. */
async function streamStatus (url: string, path: string, token: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = httpGet(new URL(path, url), { headers: { authorization: `Bearer ${token}` } }, res => { resolve(res.statusCode ?? 0); req.destroy() })
    req.once('error', reject)
  })
}

function assertRefused (t: ExecutionContext, res: HttpResult, status: number, code: string, label: string): void {
  t.is(res.status, status, `${label}: status`)
  if (!label.startsWith('HEAD ')) t.is(res.json().error?.code, code, `${label}: code`) // a HEAD answer has no body
  t.deepEqual(Object.keys(res.headers).filter(h => h.startsWith('access-control-')), [], `${label}: no CORS header`)
}

test('every route refuses a missing and a wrong token (401) and a foreign Host (403); the right token passes', async t => {
  const node = await startNode(t)
  const url = node.apiUrl!
  const port = new URL(url).port
  const routes = routeTable()
  t.true(routes.length >= 25, `the table lists the routes (${routes.length})`)
  let i = 0
  for (const r of routes) {
    // One client address per route (all of 127/8 is loopback), so that the failure limit is not what answers.
    const localAddress = `127.0.1.${++i}`
    const label = `${r.method} ${samplePath(r)}`
    const base = { method: r.method, path: samplePath(r), localAddress }
    const missing = await httpRequest(url, { ...base, token: null })
    assertRefused(t, missing, 401, 'UNAUTHORIZED', `${label} without a token`)
    t.regex(String(missing.headers['www-authenticate']), /^Bearer/, `${label}: WWW-Authenticate`)
    assertRefused(t, await httpRequest(url, { ...base, token: WRONG }), 401, 'UNAUTHORIZED', `${label} with a wrong token`)
    assertRefused(t, await httpRequest(url, { ...base, headers: { authorization: 'Basic dXNlcjpwYXNz' } }), 401, 'UNAUTHORIZED', `${label} with another scheme`)
    // The right token, but a name that is not this node's: a page that rebound its DNS name to 127.0.0.1.
    assertRefused(t, await httpRequest(url, { ...base, headers: { host: `rebind.example:${port}` } }), 403, 'HOST_REFUSED', `${label} with a foreign Host`)
    if (r.method === 'HEAD') continue // no body to read a code from
    // The event stream never ends by itself: its status line is the answer.
    if (label === 'GET /v1/events') { t.is(await streamStatus(url, base.path, node.apiToken!), 200, label); continue }
    const ok = await httpRequest(url, base)
    t.false([401, 403, 415, 429].includes(ok.status), `${label} with the token: answered by the route (${ok.status} ${ok.body.toString().slice(0, 120)})`)
  }
  t.is((await httpRequest(url, { path: '/v1/status' })).status, 200)
  // An unknown path is not told apart from a known one without the token.
  assertRefused(t, await httpRequest(url, { path: '/v1/nothing-here', token: null, localAddress: '127.0.2.1' }), 401, 'UNAUTHORIZED', 'unknown path')
})

test('the Host check accepts the bound address, localhost, 127.0.0.1, [::1] and --api-allowed-hosts names', async t => {
  const node = await startNode(t, { apiAllowedHosts: ['replicant.lan', 'other.lan:8443'] })
  const url = node.apiUrl!
  const port = new URL(url).port
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`, `replicant.lan:${port}`, 'other.lan:8443']) {
    t.is((await httpRequest(url, { path: '/v1/status', headers: { host } })).status, 200, host)
  }
  for (const host of ['localhost', `localhost:${Number(port) + 1}`, `replicant.lan:${Number(port) + 1}`, 'other.lan', `127.0.0.1.nip.io:${port}`]) {
    assertRefused(t, await httpRequest(url, { path: '/v1/status', headers: { host } }), 403, 'HOST_REFUSED', host)
  }
  // HTTP/1.0 may leave the Host out: that names nothing, so it is refused too.
  const socket = connect(Number(port), '127.0.0.1')
  socket.end(`GET /v1/status HTTP/1.0\r\nAuthorization: Bearer ${node.apiToken!}\r\n\r\n`)
  let raw = ''
  for await (const piece of socket) raw += (piece as Buffer).toString('latin1')
  t.regex(raw, /^HTTP\/1\.1 403 /)
  t.regex(raw, /HOST_REFUSED/)
})

test('a JSON body is parsed only as application/json: text/plain and form bodies get 415; file uploads stay bytes', async t => {
  const node = await startNode(t)
  const url = node.apiUrl!
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'text/plain; charset=application/json']) {
    const res = await httpRequest(url, { method: 'POST', path: '/v1/volumes', headers: { 'content-type': type }, body: JSON.stringify({ name: 'v' }) })
    assertRefused(t, res, 415, 'UNSUPPORTED_MEDIA_TYPE', type)
  }
  assertRefused(t, await httpRequest(url, { method: 'POST', path: '/v1/volumes', body: JSON.stringify({ name: 'v' }) }), 415, 'UNSUPPORTED_MEDIA_TYPE', 'no Content-Type')
  t.deepEqual((await httpRequest(url, { path: '/v1/volumes' })).json().volumes, [], 'nothing created')
  t.is((await httpRequest(url, { method: 'POST', path: '/v1/volumes', headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify({ name: 'v' }) })).status, 201)
  // A body-less POST without a Content-Type is `{}`, as before.
  t.is((await httpRequest(url, { method: 'POST', path: '/v1/volumes/v/snapshots' })).status, 201)
  // File bytes are a body, whatever their type.
  t.is((await httpRequest(url, { method: 'PUT', path: '/v1/volumes/v/files/a.txt', headers: { 'content-type': 'text/plain' }, body: '{"not":"parsed"}' })).status, 201)
  t.is((await httpRequest(url, { path: '/v1/volumes/v/files/a.txt' })).body.toString(), '{"not":"parsed"}')
})

test('no CORS: a preflight is not honoured and no answer carries access-control headers', async t => {
  const node = await startNode(t)
  const url = node.apiUrl!
  const origin = { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' }
  const preflight = await httpRequest(url, { method: 'OPTIONS', path: '/v1/volumes', headers: origin, token: null })
  assertRefused(t, preflight, 401, 'UNAUTHORIZED', 'preflight')
  // Even with the token, OPTIONS is no method of any route, and nothing allows the origin.
  assertRefused(t, await httpRequest(url, { method: 'OPTIONS', path: '/v1/volumes', headers: origin }), 405, 'METHOD_NOT_ALLOWED', 'OPTIONS with the token')
  const get = await httpRequest(url, { path: '/v1/status', headers: { origin: 'https://evil.example' } })
  t.is(get.status, 200)
  t.deepEqual(Object.keys(get.headers).filter(h => h.startsWith('access-control-')), [])
})

test('failures are rate-limited per client address: 429 with Retry-After, other addresses unaffected, the right token still passes', async t => {
  const node = await startNode(t)
  const url = node.apiUrl!
  const from = { path: '/v1/status', localAddress: '127.0.3.1' }
  for (let i = 0; i < MAX_AUTH_FAILURES; i++) assertRefused(t, await httpRequest(url, { ...from, token: WRONG }), 401, 'UNAUTHORIZED', `failure ${i + 1}`)
  for (const token of [WRONG, null]) {
    const limited = await httpRequest(url, { ...from, token })
    assertRefused(t, limited, 429, 'RATE_LIMITED', `after ${MAX_AUTH_FAILURES} failures (${String(token)})`)
    const wait = Number(limited.headers['retry-after'])
    t.true(wait > 0 && wait <= 60, `Retry-After ${String(limited.headers['retry-after'])}`)
  }
  // Another address is not punished for this one.
  assertRefused(t, await httpRequest(url, { path: '/v1/status', localAddress: '127.0.3.2', token: WRONG }), 401, 'UNAUTHORIZED', 'another address')
  // The operator's own client shares 127.0.0.1 with any local process: a flood must not lock it out.
  t.is((await httpRequest(url, from)).status, 200)
})

test('the failure record is bounded: a flood of client addresses keeps at most MAX_TRACKED_CLIENTS', t => {
  const access = new ApiAccess({ token: 'the-right-token-of-this-node' })
  for (let i = 0; i < MAX_TRACKED_CLIENTS * 3; i++) {
    const req = { headers: {}, socket: { remoteAddress: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` } } as unknown as IncomingMessage
    t.throws(() => { access.checkToken(req) }, { code: 'UNAUTHORIZED' })
  }
  t.is(access.trackedClients, MAX_TRACKED_CLIENTS)
})

test('the status page hook: GET /?token= sets an HttpOnly SameSite=Strict cookie, which then stands for the token', async t => {
  const node = await startNode(t)
  const url = node.apiUrl!
  assertRefused(t, await httpRequest(url, { path: `/?token=${WRONG}`, token: null }), 401, 'UNAUTHORIZED', 'wrong token in the query')
  const login = await httpRequest(url, { path: `/?token=${encodeURIComponent(node.apiToken!)}`, token: null })
  t.is(login.status, 303)
  t.is(login.headers.location, '/')
  const cookie = String(login.headers['set-cookie'])
  t.regex(cookie, /^replicant_token=[^;]+; HttpOnly; SameSite=Strict; Path=\//)
  const pair = cookie.split(';')[0]
  t.is((await httpRequest(url, { path: '/v1/status', token: null, headers: { cookie: `other=1; ${pair}` } })).status, 200)
  assertRefused(t, await httpRequest(url, { path: '/v1/status', token: null, headers: { cookie: `replicant_token=${WRONG}` } }), 401, 'UNAUTHORIZED', 'wrong cookie')
  // The page itself, with the cookie alone; framing and foreign scripts refused by its headers.
  const page = await httpRequest(url, { path: '/', token: null, headers: { cookie: pair } })
  t.is(page.status, 200)
  t.regex(String(page.headers['content-type']), /^text\/html/)
  t.regex(String(page.headers['content-security-policy']), /script-src 'sha256-[^']+'; .*frame-ancestors 'none'/)
  t.regex(page.body.toString(), /EventSource\('\/v1\/events/)
  assertRefused(t, await httpRequest(url, { path: '/', token: null }), 401, 'UNAUTHORIZED', 'no page without the cookie')
})

test('init makes the token (mode 0600, no temp file left); api-token prints it; a start recreates a missing one', async t => {
  const dataDir = join(await tmpDir(t), 'node')
  t.is((await runCli(['init'], { dataDir })).code, 0)
  const file = join(dataDir, API_TOKEN_FILE)
  t.is((await stat(file)).mode & 0o777, 0o600)
  t.deepEqual((await readdir(dataDir)).filter(f => f.includes('.tmp')), [])
  const token = (await readFile(file, 'utf8')).trim()
  t.regex(token, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url')
  const shown = await runCli(['api-token'], { dataDir })
  t.is(shown.code, 0, shown.stderr)
  t.is(shown.stdout, `${token}\n`)
  t.is((await runCli(['init'], { dataDir })).code, 0)
  t.is((await readFile(file, 'utf8')).trim(), token, 'a second init keeps it')

  // An older data dir without a token gets one at its next start; the CLI finds it there.
  await rm(file)
  const missing = await runCli(['api-token'], { dataDir })
  t.is(missing.code, 1)
  t.regex(missing.stderr, /NO_API_TOKEN/)
  const proc = await spawnNodeProcess(t, dataDir)
  t.is((await stat(file)).mode & 0o777, 0o600)
  t.not(proc.token, token)
  // A REPLICANT_TOKEN left set for another node does not get in the way of --data.
  const status = await runCli(['status', '--json'], { dataDir, env: { REPLICANT_TOKEN: 'a-stale-token-of-another-node' } })
  t.is(status.code, 0, status.stderr)
  // --api-url users pass the token themselves: none is sent otherwise.
  const bare = await runCli(['--api-url', proc.url, 'status'], { dataDir: await tmpDir(t) })
  t.is(bare.code, 1)
  t.regex(bare.stderr, /UNAUTHORIZED/)
  t.is((await runCli(['--api-url', proc.url, 'status'], { dataDir: await tmpDir(t), env: { REPLICANT_TOKEN: proc.token } })).code, 0)
  t.is((await runCli(['--api-url', proc.url, '--token', proc.token, 'status'], { dataDir: await tmpDir(t) })).code, 0)
  await proc.kill()
})

test('NodeOptions.apiToken sets the token (and the file the CLI reads); a token too short to be safe is refused', async t => {
  const token = 'an-explicit-token-for-tests'
  const node = await startNode(t, { apiToken: token })
  t.is(node.apiToken, token)
  t.is((await readFile(join(node.dataDir, API_TOKEN_FILE), 'utf8')).trim(), token)
  t.is((await httpRequest(node.apiUrl!, { path: '/v1/status', token })).status, 200)
  t.is((await runCli(['status'], { dataDir: node.dataDir })).code, 0)
  await t.throwsAsync(startNode(t, { apiToken: 'short' }), { code: 'BAD_REQUEST', message: /16 to 512 printable/ })
})

test('an API off loopback without TLS or --api-insecure refuses to start (one line, exit 1, nothing created); --api-insecure starts', async t => {
  const dataDir = join(await tmpDir(t), 'node')
  const r = await runCli(['start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '0.0.0.0:0'], { dataDir })
  t.is(r.code, 1)
  t.regex(r.stderr, /^replicant: the HTTP API address 0\.0\.0\.0:0 is off loopback: .*--api-tls-cert.*--api-insecure.* \[API_INSECURE\]\n$/)
  t.false(r.stderr.includes('    at '), 'no stack trace')
  await t.throwsAsync(stat(dataDir), { code: 'ENOENT' }, 'no data dir made')

  const proc = await spawnNodeProcess(t, dataDir, ['--api', '0.0.0.0:0', '--api-insecure'])
  t.regex(proc.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'the CLI dials the wildcard on loopback')
  const status = await runCli(['status', '--json'], { dataDir })
  t.is(status.code, 0, status.stderr)
  t.is(JSON.parse(status.stdout).peerId, proc.peerId)
  await proc.kill()
})

test('with --api-tls-cert/--api-tls-key the API is https off loopback, and the CLI uses it', async t => {
  if (!await promisify(execFile)('openssl', ['version']).then(() => true, () => false)) { t.log('openssl not found: skipped'); t.pass(); return }
  const dir = await tmpDir(t)
  const cert = join(dir, 'api.crt')
  const key = join(dir, 'api.key')
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=replicant-test', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert])
  const dataDir = join(dir, 'node')
  const proc = await spawnNodeProcess(t, dataDir, ['--api', '0.0.0.0:0', '--api-tls-cert', cert, '--api-tls-key', key])
  t.regex(proc.url, /^https:\/\/127\.0\.0\.1:\d+$/)
  t.is(JSON.parse(await readFile(join(dataDir, 'api.json'), 'utf8')).tlsCert, cert)
  // The CLI on --data trusts the certificate the node serves (api.json names it).
  const status = await runCli(['status', '--json'], { dataDir })
  t.is(status.code, 0, status.stderr)
  t.is(JSON.parse(status.stdout).api, proc.url)
  // Through --api-url it needs --api-ca for a self-signed certificate.
  const other = await tmpDir(t)
  const untrusted = await runCli(['--api-url', proc.url, '--token', proc.token, 'status'], { dataDir: other })
  t.is(untrusted.code, 1)
  t.regex(untrusted.stderr, /self-signed certificate/)
  t.is((await runCli(['--api-url', proc.url, '--token', proc.token, '--api-ca', cert, 'status'], { dataDir: other })).code, 0)
  // The token is still required over TLS.
  const ca = await readFile(cert)
  t.is((await httpRequest(proc.url, { path: '/v1/status', token: null, ca })).status, 401)
  t.is((await httpRequest(proc.url, { path: '/v1/status', ca })).status, 200)
  await proc.kill()
})

test('a bad TLS pair fails the start with one line', async t => {
  const dir = await tmpDir(t)
  const dataDir = join(dir, 'node')
  const r = await runCli(['start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api', '127.0.0.1:0', '--api-tls-cert', join(dir, 'none.crt'), '--api-tls-key', join(dir, 'none.key')], { dataDir })
  t.is(r.code, 1)
  t.regex(r.stderr, /^replicant: cannot read the API TLS certificate .*none\.crt: ENOENT \[BAD_REQUEST\]\n$/)
  const half = await runCli(['start', '--api-tls-cert', join(dir, 'none.crt')], { dataDir })
  t.is(half.code, 1)
  t.regex(half.stderr, /--api-tls-cert and --api-tls-key go together/)
})
