/**
 * WebDAV semantics that litmus and rclone do not pin down: MOVE and COPY reuse the chunks
 * (records, not bytes), folder markers and moves replicate, a chunked PUT without
 * Content-Length, Depth infinity refused, the token as Basic password or bearer (and only on
 * /dav), Windows' bare lock token.
 */
import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { startNode, httpRequest, clientOf, waitFor, type HttpResult } from './helpers.js'
import { converged, paths } from './replication-helpers.js'
import { hashHex } from '../store/chunk-store.js'
import type { ReplicantNode } from '../node/replicant-node.js'

function basic (password: string, user = 'whoever'): string {
  return 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')
}

async function dav (node: ReplicantNode, method: string, path: string, headers: Record<string, string | number> = {}, body?: string | Uint8Array): Promise<HttpResult> {
  return await httpRequest(node.apiUrl!, { method, path, headers: { authorization: basic(node.apiToken!), ...headers }, body })
}

test('MOVE and COPY of a folder write records that reuse the chunks, plus tombstones; the bytes read back', async t => {
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'm' })
  const big = randomBytes(700_000)
  t.is((await dav(node, 'MKCOL', '/dav/m/a')).status, 201)
  t.is((await dav(node, 'MKCOL', '/dav/m/a/sub')).status, 201)
  t.is((await dav(node, 'PUT', '/dav/m/a/big.bin', {}, big)).status, 201)
  t.is((await dav(node, 'PUT', '/dav/m/a/sub/small.txt', {}, 'small')).status, 201)
  const before = await node.volumes.stat('m', '/a/big.bin')
  const seqBefore = (await node.store.requireVolume('m')).seq
  const moved = await dav(node, 'MOVE', '/dav/m/a/', { destination: `${node.apiUrl!}/dav/m/b/` })
  t.is(moved.status, 201)
  const after = await node.volumes.stat('m', '/b/big.bin')
  t.is(hashHex(after.chunks), hashHex(before.chunks), 'the same chunk list')
  t.is(after.mtime, before.mtime)
  // Eight records: 4 copies (the a marker, big, the sub marker, small) and 4 tombstones.
  t.is((await node.store.requireVolume('m')).seq, seqBefore + 8)
  const gone = await node.store.getFile('m', '/a/big.bin')
  t.true(gone?.deleted, 'the source is a tombstone')
  t.deepEqual(await paths(node, 'm'), ['/b', '/b/big.bin', '/b/sub', '/b/sub/small.txt'])
  t.deepEqual((await dav(node, 'GET', '/dav/m/b/big.bin')).body, big)
  // COPY onto an existing file with Overwrite F is refused; with T it replaces it.
  t.is((await dav(node, 'PUT', '/dav/m/other.txt', {}, 'other')).status, 201)
  t.is((await dav(node, 'COPY', '/dav/m/b/sub/small.txt', { destination: '/dav/m/other.txt', overwrite: 'F' })).status, 412)
  t.is((await dav(node, 'COPY', '/dav/m/b/sub/small.txt', { destination: '/dav/m/other.txt' })).status, 204)
  t.is((await dav(node, 'GET', '/dav/m/other.txt')).body.toString(), 'small')
  // Into itself, or to another volume: refused.
  t.is((await dav(node, 'MOVE', '/dav/m/b/', { destination: '/dav/m/b/sub/x/' })).status, 403)
  t.is((await dav(node, 'COPY', '/dav/m/b/', { destination: '/dav/n/b/' })).status, 502)
  // Onto a folder that holds the source: refused, and nothing is lost.
  t.is((await dav(node, 'MOVE', '/dav/m/b/sub', { destination: '/dav/m/b' })).status, 403)
  t.deepEqual((await dav(node, 'GET', '/dav/m/b/big.bin')).body, big)
})

test('folder markers and moves replicate: MKCOL and MOVE on one member show on the other', async t => {
  t.timeout(120_000)
  const a = await startNode(t)
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'r' })
  await a.sync.addReplica('r', b.peerId)
  await waitFor(async () => (await b.store.getVolume('r'))?.state === 'steady' ? true : undefined)
  t.is((await dav(a, 'MKCOL', '/dav/r/empty')).status, 201)
  t.is((await dav(a, 'MKCOL', '/dav/r/docs')).status, 201)
  t.is((await dav(a, 'PUT', '/dav/r/docs/x.txt', {}, 'x')).status, 201)
  t.is((await dav(a, 'MOVE', '/dav/r/docs', { destination: '/dav/r/papers' })).status, 201)
  await converged([a, b], 'r', tr => tr.length === 3)
  const listing = await dav(b, 'PROPFIND', '/dav/r/', { depth: 1 })
  t.is(listing.status, 207)
  const hrefs = [...listing.body.toString().matchAll(/<D:href>([^<]*)<\/D:href>/g)].map(m => m[1])
  t.deepEqual(hrefs, ['/dav/r/', '/dav/r/empty/', '/dav/r/papers/'])
  t.regex(listing.body.toString(), /<D:href>\/dav\/r\/empty\/<\/D:href><D:propstat><D:prop>.*<D:resourcetype><D:collection\/><\/D:resourcetype>/)
  t.is((await dav(b, 'GET', '/dav/r/papers/x.txt')).body.toString(), 'x')
  // Deleting the last file of a folder keeps the folder (it gets a marker).
  t.is((await dav(b, 'DELETE', '/dav/r/papers/x.txt')).status, 204)
  t.is((await dav(b, 'PROPFIND', '/dav/r/papers', { depth: 0 })).status, 207)
})

test('PUT without Content-Length (chunked, as Finder sends) stores the whole body; Depth infinity is refused', async t => {
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'c' })
  const u = new URL(node.apiUrl!)
  const parts = [randomBytes(100_000), randomBytes(3), randomBytes(200_000)]
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method: 'PUT', path: '/dav/c/chunked.bin', headers: { authorization: basic(node.apiToken!) } }, res => { res.resume(); resolve(res.statusCode ?? 0) })
    req.once('error', reject)
    for (const p of parts) req.write(p)
    req.end()
  })
  t.is(status, 201)
  t.deepEqual((await dav(node, 'GET', '/dav/c/chunked.bin')).body, Buffer.concat(parts))
  const ranged = await dav(node, 'GET', '/dav/c/chunked.bin', { range: 'bytes=99998-100004' })
  t.is(ranged.status, 206)
  t.deepEqual(ranged.body, Buffer.concat(parts).subarray(99998, 100005))
  // HEAD with a Range: the same status and headers, no body.
  const head = await dav(node, 'HEAD', '/dav/c/chunked.bin', { range: 'bytes=99998-100004' })
  t.is(head.status, 206)
  t.is(head.headers['content-range'], 'bytes 99998-100004/300003')
  t.is(head.headers['content-length'], '7')
  t.is(head.body.length, 0)
  t.is((await dav(node, 'HEAD', '/dav/c/chunked.bin', { range: 'bytes=400000-' })).status, 416)
  // RFC 4331 quota properties, asked by name: bytes under the folder, free bytes of the data dir's disk.
  const quota = (await dav(node, 'PROPFIND', '/dav/c/', { depth: 0, 'content-type': 'application/xml' },
    '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-used-bytes/><D:quota-available-bytes/></D:prop></D:propfind>')).body.toString()
  t.regex(quota, /<D:quota-used-bytes>300003<\/D:quota-used-bytes>/)
  t.regex(quota, /<D:quota-available-bytes>\d+<\/D:quota-available-bytes>/)
  const deep = await dav(node, 'PROPFIND', '/dav/c/', { depth: 'infinity' })
  t.is(deep.status, 403)
  t.regex(deep.body.toString(), /propfind-finite-depth/)
})

test('the token as the Basic password (any user) or a bearer token, on /dav only; bare lock tokens unlock', async t => {
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'auth' })
  const url = node.apiUrl!
  for (let i = 0; i < 15; i++) {
    // No credentials at all: the challenge, never counted toward the failure limit (no 429).
    const none = await httpRequest(url, { method: 'PROPFIND', path: '/dav/auth/', token: null, localAddress: '127.0.3.1' })
    t.is(none.status, 401)
    t.regex(String(none.headers['www-authenticate']), /Basic realm="replicant"/)
  }
  t.is((await httpRequest(url, { method: 'PROPFIND', path: '/dav/auth/', headers: { authorization: basic('wrong') }, localAddress: '127.0.3.2' })).status, 401)
  t.is((await httpRequest(url, { method: 'PROPFIND', path: '/dav/auth/', headers: { authorization: basic(node.apiToken!, 'alice') } })).status, 207)
  t.is((await httpRequest(url, { method: 'PROPFIND', path: '/dav/auth/' })).status, 207, 'bearer (the helper sends it)')
  // The status page's cookie, as on the JSON API; and the same Host check (DNS rebinding) before any token.
  t.is((await httpRequest(url, { method: 'PROPFIND', path: '/dav/auth/', token: null, headers: { cookie: `replicant_token=${node.apiToken!}` } })).status, 207)
  const rebound = await httpRequest(url, { method: 'PROPFIND', path: '/dav/auth/', headers: { host: 'evil.example', authorization: basic(node.apiToken!) } })
  t.is(rebound.status, 403)
  t.regex(rebound.body.toString(), /HOST_REFUSED/)
  // The JSON API takes no Basic: a browser that cached the credentials cannot reach it.
  t.is((await httpRequest(url, { path: '/v1/volumes', headers: { authorization: basic(node.apiToken!) }, localAddress: '127.0.3.3' })).status, 401)
  const locked = await httpRequest(url, {
    method: 'LOCK',
    path: '/dav/auth/f.txt',
    headers: { 'content-type': 'application/xml' },
    body: '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>'
  })
  t.is(locked.status, 201, 'a lock on an unmapped URL makes an empty file')
  const token = String(locked.headers['lock-token']).replace(/^<|>$/g, '')
  t.is((await httpRequest(url, { method: 'PUT', path: '/dav/auth/f.txt', body: 'x' })).status, 423)
  t.is((await httpRequest(url, { method: 'PUT', path: '/dav/auth/f.txt', body: 'x', headers: { if: `(<${token}>)` } })).status, 204)
  t.is((await httpRequest(url, { method: 'UNLOCK', path: '/dav/auth/f.txt', headers: { 'lock-token': token } })).status, 204)
  t.is((await httpRequest(url, { method: 'PUT', path: '/dav/auth/f.txt', body: 'y' })).status, 204)
})

test('in an all-mode volume, MKCOL, PUT and MOVE are on the other member when they are answered', async t => {
  t.timeout(120_000)
  const a = await startNode(t)
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'all', writeMode: 'all' })
  await a.sync.addReplica('all', b.peerId)
  await waitFor(async () => (await b.store.getVolume('all'))?.state === 'steady' ? true : undefined)
  const live = async (path: string): Promise<boolean> => (await b.store.getFile('all', path))?.deleted === false
  t.is((await dav(a, 'MKCOL', '/dav/all/f')).status, 201)
  t.true(await live('/f'), 'the marker is on b')
  t.is((await dav(a, 'PUT', '/dav/all/f/x.txt', {}, 'x')).status, 201)
  t.true(await live('/f/x.txt'))
  t.is((await dav(a, 'MOVE', '/dav/all/f', { destination: '/dav/all/g' })).status, 201)
  t.true(await live('/g'))
  t.true(await live('/g/x.txt'))
  t.false(await live('/f/x.txt'), 'the source is a tombstone on b too')
  t.is(hashHex((await b.store.getFile('all', '/g/x.txt'))!.chunks), hashHex((await a.store.getFile('all', '/g/x.txt'))!.chunks))
})
