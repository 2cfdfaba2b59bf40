import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { request, type Server } from 'node:http'
import { once } from 'node:events'
import type { ReplicantNode } from '../node/replicant-node.js'
import { startNode, httpRequest, sleep, waitFor, type HttpResult } from './helpers.js'

const K64 = 64 * 1024

interface Fixture {
  node: ReplicantNode
  api: (opts: { method?: string, path: string, headers?: Record<string, string | number>, body?: string | Uint8Array }) => Promise<HttpResult>
  files: Map<string, Buffer>
  /** Asserts that the volume lists exactly the known files and each reads back byte for byte. */
  checkIntact: (t: ExecutionContext, label: string) => Promise<void>
}

const filePath = (vol: string, path: string): string =>
  `/v1/volumes/${vol}/files/${path.split('/').filter(s => s !== '').map(encodeURIComponent).join('/')}`

/** A JSON request (POST, PATCH) without a Content-Type is sent as application/json, as the client does. */
function withJsonType (opts: Parameters<Fixture['api']>[0]): Parameters<Fixture['api']>[0] {
  const typed = Object.keys(opts.headers ?? {}).some(k => k.toLowerCase() === 'content-type')
  return opts.method === 'POST' || opts.method === 'PATCH' ? { ...opts, headers: { ...(typed ? {} : { 'content-type': 'application/json' }), ...opts.headers } } : opts
}

/** A node with volume 'v' holding a few known files. */
async function setup (t: ExecutionContext, node?: ReplicantNode): Promise<Fixture> {
  node ??= await startNode(t)
  const api: Fixture['api'] = async opts => await httpRequest(node.apiUrl!, withJsonType(opts))
  const files = new Map<string, Buffer>([
    ['/keep/a.bin', randomBytes(K64 * 2 + 17)],
    ['/keep/b.txt', Buffer.from('hello, replicant\n')],
    ['/empty', Buffer.alloc(0)]
  ])
  t.is((await api({ method: 'POST', path: '/v1/volumes', body: JSON.stringify({ name: 'v' }) })).status, 201)
  for (const [p, bytes] of files) {
    const res = await api({ method: 'PUT', path: filePath('v', p), body: bytes })
    t.is(res.status, 201, `put ${p}`)
  }
  const checkIntact = async (t: ExecutionContext, label: string): Promise<void> => {
    const list = await api({ path: '/v1/volumes/v/files' })
    t.is(list.status, 200, `${label}: listing answers`)
    t.deepEqual(list.json().files.map((f: { path: string }) => f.path), [...files.keys()].sort(), `${label}: listing unchanged`)
    for (const [p, bytes] of files) {
      const res = await api({ path: filePath('v', p) })
      t.is(res.status, 200, `${label}: ${p} readable`)
      t.true(res.body.equals(bytes), `${label}: ${p} content intact`)
    }
  }
  return { node, api, files, checkIntact }
}

function assertError (t: ExecutionContext, res: HttpResult, status: number, code: string, label = ''): void {
  t.is(res.status, status, `${label} status`)
  t.regex(String(res.headers['content-type']), /application\/json/, `${label} content-type`)
  const body = res.json()
  t.is(body.error?.code, code, `${label} error code`)
  t.is(typeof body.error?.message, 'string', `${label} error message`)
}

test('volumes: create, list and info', async t => {
  const node = await startNode(t)
  const api = async (o: Parameters<Fixture['api']>[0]): Promise<HttpResult> => await httpRequest(node.apiUrl!, withJsonType(o))
  t.deepEqual((await api({ path: '/v1/volumes' })).json(), { volumes: [] })

  const created = await api({ method: 'POST', path: '/v1/volumes', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'photos' }) })
  t.is(created.status, 201)
  const vol = created.json()
  t.is(vol.name, 'photos')
  t.regex(vol.id, /^[0-9a-f]{32}$/)
  t.is(vol.generation, 1)
  t.deepEqual(vol.members, [node.peerId])
  t.is(vol.writeMode, 'active')
  t.is(vol.chunkSize, K64)
  t.is(vol.seq, 0)

  const second = await api({ method: 'POST', path: '/v1/volumes', body: JSON.stringify({ name: 'docs', writeMode: 'all', chunkSize: 4096 }) })
  t.is(second.status, 201)
  t.is(second.json().writeMode, 'all')
  t.is(second.json().chunkSize, 4096)

  const list = (await api({ path: '/v1/volumes' })).json()
  t.deepEqual(list.volumes.map((v: { name: string }) => v.name).sort(), ['docs', 'photos'])
  t.is(list.volumes.find((v: { name: string }) => v.name === 'photos').id, vol.id)

  await api({ method: 'PUT', path: '/v1/volumes/photos/files/a', body: Buffer.alloc(1000, 1) })
  await api({ method: 'PUT', path: '/v1/volumes/photos/files/b/c', body: Buffer.alloc(24, 2) })
  const info = await api({ path: '/v1/volumes/photos' })
  t.is(info.status, 200)
  t.is(info.json().name, 'photos')
  t.is(info.json().id, vol.id)
  t.is(info.json().files, 2)
  t.is(info.json().bytes, 1024)
  t.is(info.json().seq, 2)

  const status = (await api({ path: '/v1/status' })).json()
  t.is(status.peerId, node.peerId)
  t.deepEqual(status.uncleanShutdown, [])
  t.deepEqual(status.volumes.map((v: { name: string }) => v.name).sort(), ['docs', 'photos'])
})

test('files: PUT, GET, HEAD, overwrite and DELETE', async t => {
  const { api } = await setup(t)
  const bytes = randomBytes(3 * K64 + 5)
  const put = await api({ method: 'PUT', path: '/v1/volumes/v/files/dir/sub/file.bin', headers: { 'x-replicant-mode': '600', 'x-replicant-mtime': 1_600_000_000_000 }, body: bytes })
  t.is(put.status, 201)
  const rec = put.json()
  t.is(rec.path, '/dir/sub/file.bin')
  t.is(rec.size, bytes.byteLength)
  t.is(rec.mode, 0o600)
  t.is(rec.mtime, 1_600_000_000_000)
  t.is(rec.chunks, 4)

  const get = await api({ path: '/v1/volumes/v/files/dir/sub/file.bin' })
  t.is(get.status, 200)
  t.true(get.body.equals(bytes))
  t.is(get.headers['content-length'], String(bytes.byteLength))
  t.is(get.headers['content-type'], 'application/octet-stream')
  t.is(get.headers['accept-ranges'], 'bytes')
  t.is(get.headers['x-replicant-mode'], '600')
  t.is(get.headers['x-replicant-mtime'], '1600000000000')
  t.is(get.headers['last-modified'], new Date(1_600_000_000_000).toUTCString())
  t.truthy(get.headers.etag)

  const head = await api({ method: 'HEAD', path: '/v1/volumes/v/files/dir/sub/file.bin' })
  t.is(head.status, 200)
  t.is(head.body.byteLength, 0)
  t.is(head.headers['content-length'], String(bytes.byteLength))
  t.is(head.headers.etag, get.headers.etag)

  // A leading-slash-free path and the same path with the percent-encoded form name one file.
  const encoded = await api({ path: '/v1/volumes/v/files/dir%2Fsub/file%2Ebin' })
  t.is(encoded.status, 200)
  t.true(encoded.body.equals(bytes))

  const replacement = Buffer.from('short now')
  const over = await api({ method: 'PUT', path: '/v1/volumes/v/files/dir/sub/file.bin', body: replacement })
  t.is(over.status, 201)
  t.true(over.json().seq > rec.seq)
  t.true((await api({ path: '/v1/volumes/v/files/dir/sub/file.bin' })).body.equals(replacement))
  t.not((await api({ method: 'HEAD', path: '/v1/volumes/v/files/dir/sub/file.bin' })).headers.etag, get.headers.etag)

  const del = await api({ method: 'DELETE', path: '/v1/volumes/v/files/dir/sub/file.bin' })
  t.is(del.status, 200)
  t.like(del.json(), { path: '/dir/sub/file.bin', deleted: true })
  assertError(t, await api({ path: '/v1/volumes/v/files/dir/sub/file.bin' }), 404, 'FILE_NOT_FOUND')
  t.is((await api({ method: 'HEAD', path: '/v1/volumes/v/files/dir/sub/file.bin' })).status, 404)
  assertError(t, await api({ method: 'DELETE', path: '/v1/volumes/v/files/dir/sub/file.bin' }), 404, 'FILE_NOT_FOUND')
  const listed = (await api({ path: '/v1/volumes/v/files' })).json().files.map((f: { path: string }) => f.path)
  t.false(listed.includes('/dir/sub/file.bin'))

  // Re-creating after a delete works.
  t.is((await api({ method: 'PUT', path: '/v1/volumes/v/files/dir/sub/file.bin', body: 'back' })).status, 201)
  t.is((await api({ path: '/v1/volumes/v/files/dir/sub/file.bin' })).body.toString(), 'back')
})

test('files: empty file, unicode and chunked (no content-length) uploads', async t => {
  const { api, node } = await setup(t)
  const empty = await api({ path: '/v1/volumes/v/files/empty' })
  t.is(empty.status, 200)
  t.is(empty.body.byteLength, 0)
  t.is(empty.headers['content-length'], '0')

  const uni = '/déjà vu/😀.txt'
  t.is((await api({ method: 'PUT', path: filePath('v', uni), body: 'smile' })).status, 201)
  t.is((await api({ path: filePath('v', uni) })).body.toString(), 'smile')
  t.true((await api({ path: '/v1/volumes/v/files' })).json().files.some((f: { path: string }) => f.path === uni))

  // Transfer-Encoding: chunked, streamed in odd pieces.
  const bytes = randomBytes(K64 * 2 + 3)
  const res = await new Promise<HttpResult>((resolve, reject) => {
    const u = new URL(node.apiUrl!)
    const req = request({ host: u.hostname, port: u.port, method: 'PUT', path: '/v1/volumes/v/files/chunked.bin', headers: { authorization: `Bearer ${node.apiToken!}` }, agent: false }, r => {
      const parts: Buffer[] = []
      r.on('data', (b: Buffer) => parts.push(b))
      r.on('end', () => { const body = Buffer.concat(parts); resolve({ status: r.statusCode ?? 0, headers: r.headers, body, json: () => JSON.parse(body.toString()) }) })
    })
    req.on('error', reject)
    for (let o = 0; o < bytes.byteLength; o += 10007) req.write(bytes.subarray(o, o + 10007))
    req.end()
  })
  t.is(res.status, 201)
  t.is(res.json().size, bytes.byteLength)
  t.true((await api({ path: '/v1/volumes/v/files/chunked.bin' })).body.equals(bytes))
})

test('files: concurrent PUTs to one path are serialised; the last commit wins', async t => {
  const { api, node } = await setup(t)
  const bodies = Array.from({ length: 6 }, () => randomBytes(K64 + 1000))
  const results = await Promise.all(bodies.map(async b => await api({ method: 'PUT', path: '/v1/volumes/v/files/race.bin', body: b })))
  t.true(results.every(r => r.status === 201))
  const seqs = results.map(r => r.json().seq).sort((a: number, b: number) => a - b)
  t.is(new Set(seqs).size, bodies.length, 'each PUT got its own seq')
  const last = results.find(r => r.json().seq === seqs[seqs.length - 1])!
  const got = await api({ path: '/v1/volumes/v/files/race.bin' })
  t.is(got.headers.etag, `"${last.json().seq}-${K64 + 1000}"`)
  t.true(got.body.equals(bodies[results.indexOf(last)]), 'the content is that of the PUT with the highest seq')
  t.deepEqual(last.json().version, { [node.peerId]: bodies.length }, 'every write advanced the version vector')
})

test('Range: satisfiable ranges give 206 with Content-Range', async t => {
  const { api } = await setup(t)
  const size = 3 * K64 + 100
  const bytes = randomBytes(size)
  await api({ method: 'PUT', path: '/v1/volumes/v/files/r.bin', body: bytes })
  const cases: Array<[string, number, number]> = [
    ['bytes=0-0', 0, 0],
    ['bytes=0-9', 0, 9],
    ['bytes=65530-65545', 65530, 65545], // across a chunk boundary
    ['bytes=65536-131071', 65536, 131071], // exactly the second chunk
    ['bytes=-10', size - 10, size - 1], // suffix
    ['bytes=-1', size - 1, size - 1],
    [`bytes=-${size + 50}`, 0, size - 1], // suffix longer than the file
    ['bytes=65536-', 65536, size - 1], // open-ended
    [`bytes=${size - 1}-`, size - 1, size - 1],
    ['bytes=100-99999999999', 100, size - 1], // end past the file is clamped
    ['Bytes=5-6', 5, 6], // the unit is case-insensitive
    [' bytes=7-8 ', 7, 8]
  ]
  for (const [range, start, end] of cases) {
    const res = await api({ path: '/v1/volumes/v/files/r.bin', headers: { range } })
    t.is(res.status, 206, range)
    t.is(res.headers['content-range'], `bytes ${start}-${end}/${size}`, range)
    t.is(res.headers['content-length'], String(end - start + 1), range)
    t.true(res.body.equals(bytes.subarray(start, end + 1)), `${range} body`)
  }
  const head = await api({ method: 'HEAD', path: '/v1/volumes/v/files/r.bin', headers: { range: 'bytes=10-19' } })
  t.is(head.status, 206)
  t.is(head.headers['content-range'], `bytes 10-19/${size}`)
  t.is(head.body.byteLength, 0)
})

test('Range: ignored ranges give the whole file with 200', async t => {
  const { api } = await setup(t)
  const bytes = randomBytes(1000)
  await api({ method: 'PUT', path: '/v1/volumes/v/files/r.bin', body: bytes })
  for (const range of ['bytes=0-1,5-6', 'items=0-1', 'none']) {
    const res = await api({ path: '/v1/volumes/v/files/r.bin', headers: { range } })
    t.is(res.status, 200, range)
    t.is(res.headers['content-range'], undefined, range)
    t.true(res.body.equals(bytes), range)
  }
})

test('Range: unsatisfiable or malformed ranges give 416 BAD_RANGE', async t => {
  const { api, checkIntact } = await setup(t)
  const size = 1000
  await api({ method: 'PUT', path: '/v1/volumes/v/files/r.bin', body: randomBytes(size) })
  for (const range of [`bytes=${size}-`, `bytes=${size}-${size + 10}`, 'bytes=5000-6000', 'bytes=-0', 'bytes=5-2', 'bytes=abc', 'bytes=-', 'bytes=', 'bytes=1-2-3', 'bytes=99999999999999999999-']) {
    const res = await api({ path: '/v1/volumes/v/files/r.bin', headers: { range } })
    assertError(t, res, 416, 'BAD_RANGE', range)
    t.is(res.headers['content-range'], `bytes */${size}`, range)
  }
  // Any range of an empty file is unsatisfiable.
  for (const range of ['bytes=0-', 'bytes=0-0', 'bytes=-1']) {
    assertError(t, await api({ path: '/v1/volumes/v/files/empty', headers: { range } }), 416, 'BAD_RANGE', `empty ${range}`)
  }
  t.is((await api({ path: '/v1/volumes/v/files/empty' })).status, 200)
  // The same store still serves everything.
  t.is((await api({ method: 'DELETE', path: '/v1/volumes/v/files/r.bin' })).status, 200)
  await checkIntact(t, 'after bad ranges')
})

test('listing: whole volume and by prefix, in path order', async t => {
  const { api, node } = await setup(t)
  await node.volumes.createVolume({ name: 'l' })
  const paths = ['/a/1', '/a/2', '/ab', '/b/c/d', '/😀/x', '/a/😀', '/z']
  for (const p of paths) t.is((await api({ method: 'PUT', path: filePath('l', p), body: p })).status, 201)
  await api({ method: 'DELETE', path: filePath('l', '/z') })
  const ls = async (q: string): Promise<string[]> => {
    const res = await api({ path: `/v1/volumes/l/files${q}` })
    t.is(res.status, 200, q)
    return res.json().files.map((f: { path: string }) => f.path)
  }
  const byteOrder = (xs: string[]): string[] => xs.slice().sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
  t.deepEqual(await ls(''), byteOrder(['/a/1', '/a/2', '/a/😀', '/ab', '/b/c/d', '/😀/x']))
  t.deepEqual(await ls('?prefix=/'), await ls(''))
  t.deepEqual(await ls('?prefix='), await ls(''))
  t.deepEqual(await ls('?prefix=%2Fa%2F'), byteOrder(['/a/1', '/a/2', '/a/😀']))
  t.deepEqual(await ls('?prefix=a/'), byteOrder(['/a/1', '/a/2', '/a/😀']))
  t.deepEqual(await ls('?prefix=/a'), byteOrder(['/a/1', '/a/2', '/a/😀', '/ab']))
  t.deepEqual(await ls('?prefix=/b/c/'), ['/b/c/d'])
  t.deepEqual(await ls(`?prefix=${encodeURIComponent('/😀/')}`), ['/😀/x'])
  t.deepEqual(await ls('?prefix=/nothing/'), [])
  t.deepEqual(await ls('?prefix=/z'), [], 'deleted files are not listed')
  const one = (await api({ path: '/v1/volumes/l/files?prefix=/b/' })).json().files[0]
  t.like(one, { path: '/b/c/d', size: 6, chunks: 1 })
  t.deepEqual(Object.keys(one.version), [node.peerId])
  // Another volume's files do not show.
  t.false((await ls('')).includes('/keep/a.bin'))
})

interface BadCase { name: string, method?: string, path: string, headers?: Record<string, string | number>, body?: string | Uint8Array, status: number, code?: string }

const json = (x: unknown): string => JSON.stringify(x)
const badCases: BadCase[] = [
  // volume creation
  { name: 'create: bad volume name', method: 'POST', path: '/v1/volumes', body: json({ name: 'Bad Name' }), status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'create: name with slash', method: 'POST', path: '/v1/volumes', body: json({ name: 'a/b' }), status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'create: name ..', method: 'POST', path: '/v1/volumes', body: json({ name: '..' }), status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'create: name not a string', method: 'POST', path: '/v1/volumes', body: json({ name: 7 }), status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'create: empty object', method: 'POST', path: '/v1/volumes', body: '{}', status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'create: empty body', method: 'POST', path: '/v1/volumes', body: '', status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'create: duplicate', method: 'POST', path: '/v1/volumes', body: json({ name: 'v' }), status: 409, code: 'VOLUME_EXISTS' },
  { name: 'create: bad chunk size', method: 'POST', path: '/v1/volumes', body: json({ name: 'w', chunkSize: 1000 }), status: 400, code: 'BAD_REQUEST' },
  { name: 'create: chunk size as string', method: 'POST', path: '/v1/volumes', body: json({ name: 'w', chunkSize: '65536' }), status: 400, code: 'BAD_REQUEST' },
  { name: 'create: bad write mode', method: 'POST', path: '/v1/volumes', body: json({ name: 'w', writeMode: 'most' }), status: 400, code: 'BAD_REQUEST' },
  { name: 'create: replicas not a list', method: 'POST', path: '/v1/volumes', body: json({ name: 'w', replicas: 'peer' }), status: 400, code: 'BAD_REQUEST' },
  { name: 'create: replica not a peer id', method: 'POST', path: '/v1/volumes', body: json({ name: 'w', replicas: ['not-a-peer'] }), status: 400, code: 'BAD_REQUEST' },
  { name: 'create: malformed volume id', method: 'POST', path: '/v1/volumes', body: json({ name: 'w', id: 'zz' }), status: 400, code: 'BAD_MESSAGE' },
  { name: 'create: generation not a number', method: 'POST', path: '/v1/volumes', body: json({ name: 'w', generation: 'one' }), status: 400, code: 'BAD_MESSAGE' },
  { name: 'create: malformed JSON', method: 'POST', path: '/v1/volumes', body: '{"name":', status: 400, code: 'BAD_REQUEST' },
  { name: 'create: not JSON at all', method: 'POST', path: '/v1/volumes', body: 'name=w', status: 400, code: 'BAD_REQUEST' },
  { name: 'create: JSON array', method: 'POST', path: '/v1/volumes', body: '["w"]', status: 400, code: 'BAD_REQUEST' },
  { name: 'create: JSON null', method: 'POST', path: '/v1/volumes', body: 'null', status: 400, code: 'BAD_REQUEST' },
  { name: 'create: JSON string', method: 'POST', path: '/v1/volumes', body: '"w"', status: 400, code: 'BAD_REQUEST' },
  { name: 'create: oversized JSON body', method: 'POST', path: '/v1/volumes', body: json({ name: 'w', pad: 'x'.repeat(100 * 1024) }), status: 413, code: 'BODY_TOO_LARGE' },
  // volume lookups
  { name: 'info: bad volume name', path: '/v1/volumes/Bad%20Name', status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'info: raw ..', path: '/v1/volumes/..', status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'info: bad percent-encoding', path: '/v1/volumes/%zz', status: 400, code: 'BAD_PATH' },
  { name: 'info: unknown volume', path: '/v1/volumes/nope', status: 404, code: 'VOLUME_NOT_FOUND' },
  { name: 'list: unknown volume', path: '/v1/volumes/nope/files', status: 404, code: 'VOLUME_NOT_FOUND' },
  { name: 'list: bad volume name', path: '/v1/volumes/NOPE/files', status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'list: prefix with ..', path: '/v1/volumes/v/files?prefix=../x', status: 400, code: 'BAD_PATH' },
  { name: 'list: prefix with NUL', path: '/v1/volumes/v/files?prefix=a%00', status: 400, code: 'BAD_PATH' },
  { name: 'list: prefix with empty segment', path: '/v1/volumes/v/files?prefix=a//', status: 400, code: 'BAD_PATH' },
  // file reads
  { name: 'get: unknown volume', path: '/v1/volumes/nope/files/a', status: 404, code: 'VOLUME_NOT_FOUND' },
  { name: 'get: bad volume name', path: '/v1/volumes/UPPER/files/a', status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'get: volume ..', path: '/v1/volumes/../files/keep/b.txt', status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'get: missing file', path: '/v1/volumes/v/files/missing', status: 404, code: 'FILE_NOT_FOUND' },
  { name: 'get: a directory is not a file', path: '/v1/volumes/v/files/keep', status: 404, code: 'FILE_NOT_FOUND' },
  { name: 'get: raw .. to escape', path: '/v1/volumes/v/files/../../../etc/passwd', status: 400, code: 'BAD_PATH' },
  { name: 'get: raw .. inside', path: '/v1/volumes/v/files/keep/../keep/b.txt', status: 400, code: 'BAD_PATH' },
  { name: 'get: raw .', path: '/v1/volumes/v/files/./keep/b.txt', status: 400, code: 'BAD_PATH' },
  { name: 'get: encoded ..', path: '/v1/volumes/v/files/%2e%2e/keep/b.txt', status: 400, code: 'BAD_PATH' },
  { name: 'get: encoded slashes around ..', path: '/v1/volumes/v/files/keep%2F..%2Fkeep%2Fb.txt', status: 400, code: 'BAD_PATH' },
  { name: 'get: %00', path: '/v1/volumes/v/files/keep/b.txt%00', status: 400, code: 'BAD_PATH' },
  { name: 'get: %00 alone', path: '/v1/volumes/v/files/%00', status: 400, code: 'BAD_PATH' },
  { name: 'get: control character', path: '/v1/volumes/v/files/a%0Ab', status: 400, code: 'BAD_PATH' },
  { name: 'get: encoded backslashes', path: '/v1/volumes/v/files/..%5C..%5Cx', status: 400, code: 'BAD_PATH' },
  { name: 'get: empty segment', path: '/v1/volumes/v/files/keep//b.txt', status: 400, code: 'BAD_PATH' },
  { name: 'get: trailing slash', path: '/v1/volumes/v/files/keep/', status: 400, code: 'BAD_PATH' },
  { name: 'get: bad percent-encoding', path: '/v1/volumes/v/files/%zz', status: 400, code: 'BAD_PATH' },
  { name: 'get: invalid UTF-8', path: '/v1/volumes/v/files/%C0%AF', status: 400, code: 'BAD_PATH' },
  { name: 'get: encoded lone surrogate', path: '/v1/volumes/v/files/%ED%A0%80', status: 400, code: 'BAD_PATH' },
  { name: 'get: segment over 255 bytes', path: `/v1/volumes/v/files/${'x'.repeat(256)}`, status: 400, code: 'BAD_PATH' },
  { name: 'get: unsatisfiable range', path: '/v1/volumes/v/files/keep/b.txt', headers: { range: 'bytes=1000-' }, status: 416, code: 'BAD_RANGE' },
  { name: 'head: missing file', method: 'HEAD', path: '/v1/volumes/v/files/missing', status: 404 },
  { name: 'head: raw ..', method: 'HEAD', path: '/v1/volumes/v/files/keep/../keep/b.txt', status: 400 },
  // file writes
  { name: 'put: raw .. to escape', method: 'PUT', path: '/v1/volumes/v/files/../escape', body: 'x', status: 400, code: 'BAD_PATH' },
  { name: 'put: raw .. over a kept file', method: 'PUT', path: '/v1/volumes/v/files/x/../keep/b.txt', body: 'overwritten', status: 400, code: 'BAD_PATH' },
  { name: 'put: %00', method: 'PUT', path: '/v1/volumes/v/files/a%00b', body: 'x', status: 400, code: 'BAD_PATH' },
  { name: 'put: trailing slash', method: 'PUT', path: '/v1/volumes/v/files/dir/', body: 'x', status: 400, code: 'BAD_PATH' },
  { name: 'put: unknown volume', method: 'PUT', path: '/v1/volumes/nope/files/a', body: 'x', status: 404, code: 'VOLUME_NOT_FOUND' },
  { name: 'put: bad volume name', method: 'PUT', path: '/v1/volumes/-v/files/a', body: 'x', status: 400, code: 'BAD_VOLUME_NAME' },
  { name: 'put: mode not octal', method: 'PUT', path: '/v1/volumes/v/files/m', headers: { 'x-replicant-mode': 'rw-r--r--' }, body: 'x', status: 400, code: 'BAD_REQUEST' },
  { name: 'put: mode out of range', method: 'PUT', path: '/v1/volumes/v/files/m', headers: { 'x-replicant-mode': '77777' }, body: 'x', status: 400, code: 'BAD_REQUEST' },
  { name: 'put: mode with digit 8', method: 'PUT', path: '/v1/volumes/v/files/m', headers: { 'x-replicant-mode': '648' }, body: 'x', status: 400, code: 'BAD_REQUEST' },
  { name: 'put: mtime not a number', method: 'PUT', path: '/v1/volumes/v/files/m', headers: { 'x-replicant-mtime': '12abc' }, body: 'x', status: 400, code: 'BAD_REQUEST' },
  { name: 'put: negative mtime', method: 'PUT', path: '/v1/volumes/v/files/m', headers: { 'x-replicant-mtime': '-1' }, body: 'x', status: 400, code: 'BAD_REQUEST' },
  { name: 'put: large body to a bad path', method: 'PUT', path: '/v1/volumes/v/files/a/../b', body: randomBytes(300 * 1024), status: 400, code: 'BAD_PATH' },
  // deletes
  { name: 'delete: missing file', method: 'DELETE', path: '/v1/volumes/v/files/missing', status: 404, code: 'FILE_NOT_FOUND' },
  { name: 'delete: raw ..', method: 'DELETE', path: '/v1/volumes/v/files/x/../keep/b.txt', status: 400, code: 'BAD_PATH' },
  { name: 'delete: unknown volume', method: 'DELETE', path: '/v1/volumes/nope/files/keep/b.txt', status: 404, code: 'VOLUME_NOT_FOUND' },
  // methods and routes
  { name: 'method: POST on a file', method: 'POST', path: '/v1/volumes/v/files/keep/b.txt', body: 'x', status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'method: DELETE on the volume list', method: 'DELETE', path: '/v1/volumes', status: 405, code: 'METHOD_NOT_ALLOWED' },
  // DELETE on a volume drops a former member's replica: refused (and nothing changed) while a member.
  { name: 'DELETE on a volume this node is a member of', method: 'DELETE', path: '/v1/volumes/v', status: 409, code: 'STILL_A_MEMBER' },
  { name: 'method: PUT on status', method: 'PUT', path: '/v1/status', body: '{}', status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'method: PATCH on a file', method: 'PATCH', path: '/v1/volumes/v/files/keep/b.txt', body: 'x', status: 405, code: 'METHOD_NOT_ALLOWED' },
  { name: 'route: unknown', path: '/v2/status', status: 404, code: 'NO_ROUTE' },
  { name: 'route: files with trailing slash', path: '/v1/volumes/v/files/', status: 404, code: 'NO_ROUTE' },
]

test('every bad input gets the right status and error code, and the store stays intact (also across a restart)', async t => {
  const fx = await setup(t)
  await fx.checkIntact(t, 'before')
  for (const c of badCases) {
    const res = await fx.api({ method: c.method, path: c.path, headers: c.headers, body: c.body })
    if (c.code !== undefined) assertError(t, res, c.status, c.code, c.name)
    else t.is(res.status, c.status, c.name)
    if (c.status === 405) t.truthy(res.headers.allow, `${c.name}: Allow header`)
    await fx.checkIntact(t, c.name)
  }
  t.deepEqual((await fx.api({ path: '/v1/volumes' })).json().volumes.map((v: { name: string }) => v.name), ['v'], 'no volume was created by a bad request')

  // The store on disk is intact too: restart on the same data dir and check again.
  const dataDir = fx.node.dataDir
  await fx.node.stop()
  const again = await startNode(t, { dataDir })
  const api = async (o: Parameters<Fixture['api']>[0]): Promise<HttpResult> => await httpRequest(again.apiUrl!, o)
  t.is((await api({ path: '/v1/volumes' })).status, 200)
  for (const [p, bytes] of fx.files) t.true((await api({ path: filePath('v', p) })).body.equals(bytes), `after restart: ${p}`)
})

test('405 names the allowed methods', async t => {
  const { api } = await setup(t)
  const res = await api({ method: 'POST', path: '/v1/volumes/v/files/keep/b.txt', body: 'x' })
  t.is(res.status, 405)
  t.deepEqual(String(res.headers.allow).split(',').map(s => s.trim()).sort(), ['DELETE', 'GET', 'HEAD', 'PUT'])
})

// ---- bodies cut short ----

/** The node's HTTP server (private; read here only to learn when it has seen a client go away). */
function serverOf (node: ReplicantNode): Server {
  return (node as unknown as { api: { server: Server } }).api.server
}

async function connections (node: ReplicantNode): Promise<number> {
  return await new Promise((resolve, reject) => serverOf(node).getConnections((err, n) => err != null ? reject(err) : resolve(n)))
}

/**
 * Starts a PUT, sends `send` bytes of its body, then destroys the connection. Returns once the
 * server has seen the connection close and has had a while to (wrongly) commit.
 */
async function cutPut (node: ReplicantNode, path: string, send: number, declared: number | undefined): Promise<void> {
  const u = new URL(node.apiUrl!)
  const headers: Record<string, number | string> = { authorization: `Bearer ${node.apiToken!}`, ...(declared !== undefined ? { 'content-length': declared } : {}) }
  const req = request({ host: u.hostname, port: u.port, method: 'PUT', path, headers, agent: false })
  req.on('error', () => {}) // destroyed on purpose
  req.on('response', res => res.resume())
  await once(req, 'socket')
  const data = randomBytes(send)
  for (let o = 0; o < send; o += 16 * 1024) {
    if (!req.write(data.subarray(o, o + 16 * 1024))) await once(req, 'drain')
  }
  // Let the server receive (and chunk) what was sent before the cut.
  await waitFor(async () => (await connections(node)) > 0 ? true : undefined)
  await sleep(200)
  req.destroy()
  await waitFor(async () => (await connections(node)) === 0 ? true : undefined)
  await sleep(300)
}

test('a PUT cut short of its Content-Length leaves no file (and keeps the old one)', async t => {
  const fx = await setup(t)
  const seqBefore = (await fx.node.store.getVolume('v'))?.seq
  await cutPut(fx.node, '/v1/volumes/v/files/partial.bin', 300 * 1024, 1024 * 1024)
  // Overwrite of an existing file cut short: the old content must stay.
  await cutPut(fx.node, filePath('v', '/keep/a.bin'), 3 * K64, 10 * K64)
  // Chunked upload (no Content-Length) cut short.
  await cutPut(fx.node, '/v1/volumes/v/files/chunked-partial.bin', 200 * 1024, undefined)
  assertError(t, await fx.api({ path: '/v1/volumes/v/files/partial.bin' }), 404, 'FILE_NOT_FOUND')
  assertError(t, await fx.api({ path: '/v1/volumes/v/files/chunked-partial.bin' }), 404, 'FILE_NOT_FOUND')
  t.is((await fx.node.store.getVolume('v'))?.seq, seqBefore, 'nothing was committed')
  await fx.checkIntact(t, 'after cut uploads')
  // The node still accepts uploads.
  t.is((await fx.api({ method: 'PUT', path: '/v1/volumes/v/files/partial.bin', body: 'complete' })).status, 201)
})
