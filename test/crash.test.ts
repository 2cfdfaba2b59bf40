import '../core/polyfill.js'
import test from 'ava'
import { request } from 'node:http'
import { once } from 'node:events'
import { randomBytes, randomInt } from 'node:crypto'
import { tmpDir, spawnNodeProcess, httpRequest, randomSource, sha256Hex, waitFor } from './helpers.js'

const MiB = 1024 * 1024

async function createVolume (url: string, name: string): Promise<void> {
  const res = await httpRequest(url, { method: 'POST', path: '/v1/volumes', body: JSON.stringify({ name }), headers: { 'content-type': 'application/json' } })
  if (res.status !== 201) throw new Error(`create volume: ${res.status} ${res.body.toString()}`)
}

async function listFiles (url: string, vol: string): Promise<Array<{ path: string, size: number }>> {
  const res = await httpRequest(url, { path: `/v1/volumes/${vol}/files` })
  if (res.status !== 200) throw new Error(`list: ${res.status} ${res.body.toString()}`)
  return res.json().files
}

test('kill -9 in the middle of a large PUT: after restart the file is absent (never partial) and the volume is reported unclean', async t => {
  const dataDir = await tmpDir(t)
  const node = await spawnNodeProcess(t, dataDir)
  await createVolume(node.url, 'v')
  // A small committed file first, so the volume is dirty when the node dies.
  const small = randomBytes(5000)
  t.is((await httpRequest(node.url, { method: 'PUT', path: '/v1/volumes/v/files/small', body: small })).status, 201)

  // Declare 300 MiB, send 24 MiB of it, then kill the node while the body is still open.
  const declared = 300 * MiB
  const u = new URL(node.url)
  const req = request({ host: u.hostname, port: u.port, method: 'PUT', path: '/v1/volumes/v/files/big.bin', headers: { 'content-length': declared, authorization: `Bearer ${node.token}` }, agent: false })
  let response: number | undefined
  req.on('response', res => { response = res.statusCode; res.resume() })
  req.on('error', () => {}) // the node dies under it
  const src = randomSource(declared, 256 * 1024)
  for await (const piece of src.source) {
    if (!req.write(piece)) await once(req, 'drain')
    if (src.yielded() >= 24 * MiB) break
  }
  const exit = await node.kill('SIGKILL')
  t.is(exit.signal, 'SIGKILL')
  req.destroy()
  t.is(response, undefined, 'the node never answered the unfinished PUT')

  const again = await spawnNodeProcess(t, dataDir)
  // Printed right after the banner (possibly in a later pipe read than the API line).
  await waitFor(() => /warning: volumes not shut down cleanly: v\n/.test(again.stdout()) ? true : undefined)
  const status = (await httpRequest(again.url, { path: '/v1/status' })).json()
  t.deepEqual(status.uncleanShutdown, ['v'])
  t.is(status.peerId, node.peerId)

  const files = await listFiles(again.url, 'v')
  // The client sent 24 of 300 MiB: the file cannot be complete, so it must not exist at all.
  t.deepEqual(files.map(f => f.path), ['/small'])
  t.is((await httpRequest(again.url, { path: '/v1/volumes/v/files/big.bin' })).status, 404)
  const back = await httpRequest(again.url, { path: '/v1/volumes/v/files/small' })
  t.true(back.body.equals(small))

  // The restarted node works normally.
  t.is((await httpRequest(again.url, { method: 'PUT', path: '/v1/volumes/v/files/big.bin', body: 'now small' })).status, 201)
  t.is((await httpRequest(again.url, { path: '/v1/volumes/v/files/big.bin' })).body.toString(), 'now small')

  // A clean stop after that clears the flag.
  t.is((await again.kill('SIGTERM')).code, 0)
  const third = await spawnNodeProcess(t, dataDir)
  t.deepEqual((await httpRequest(third.url, { path: '/v1/status' })).json().uncleanShutdown, [])
})

test('kill -9 during a stream of PUTs: every acknowledged file survives intact, nothing partial appears', async t => {
  const dataDir = await tmpDir(t)
  const node = await spawnNodeProcess(t, dataDir)
  await createVolume(node.url, 'v')

  const sent = new Map<string, string>() // path -> sha256 of the full content sent
  const acked = new Set<string>()
  let killed = false
  let n = 0
  // Two writers keep PUTs in flight; the node is killed once 40 have been acknowledged.
  const writer = async (): Promise<void> => {
    while (!killed) {
      const path = `/f${n++}`
      const bytes = randomBytes(randomInt(1, 300 * 1024))
      sent.set(path, sha256Hex(bytes))
      const res = await httpRequest(node.url, { method: 'PUT', path: `/v1/volumes/v/files${path}`, body: bytes }).catch(() => undefined)
      if (res?.status === 201 && !killed) acked.add(path)
    }
  }
  const writers = [writer(), writer()]
  while (acked.size < 40) await new Promise(resolve => setTimeout(resolve, 10))
  const ackedAtKill = new Set(acked)
  killed = true
  await node.kill('SIGKILL')
  await Promise.all(writers)

  const again = await spawnNodeProcess(t, dataDir)
  t.deepEqual((await httpRequest(again.url, { path: '/v1/status' })).json().uncleanShutdown, ['v'])
  const files = await listFiles(again.url, 'v')
  const listed = new Set(files.map(f => f.path))
  for (const p of ackedAtKill) t.true(listed.has(p), `acknowledged ${p} survived`)
  for (const f of files) {
    t.true(sent.has(f.path), `${f.path} was sent`)
    const body = await httpRequest(again.url, { path: `/v1/volumes/v/files${f.path}` })
    t.is(body.status, 200)
    t.is(body.body.byteLength, f.size)
    t.is(sha256Hex(body.body), sent.get(f.path) ?? 'never sent', `${f.path} is complete and correct`)
  }
  // The change log continues without gaps or reuse after the crash.
  const info = (await httpRequest(again.url, { path: '/v1/volumes/v' })).json()
  t.is(info.seq, files.length)
  const next = await httpRequest(again.url, { method: 'PUT', path: '/v1/volumes/v/files/after', body: 'x' })
  t.is(next.json().seq, files.length + 1)
})
