/**
 * Names end to end: the HTTP API and the CLI normalise paths to NFC (so `café` typed either
 * way is one file) and refuse look-alike characters with BAD_PATH; a peer's record whose path
 * is not NFC is refused as malformed and not applied, and the node goes on.
 */
import '../core/polyfill.js'
import test from 'ava'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startNode, tmpDir, httpRequest, runCli, spawnNodeProcess, waitFor } from './helpers.js'
import { bytes, paths, read } from './replication-helpers.js'
import { RECORD_VERSION } from '../core/records.js'

const NFC = 'caf\u00e9'
const NFD = 'cafe\u0301'
const RLO = '\u202e'

const filesUrl = (vol: string, path: string): string => `/v1/volumes/${vol}/files/${path.split('/').map(encodeURIComponent).join('/')}`

test('HTTP: PUT café as NFD then as NFC is one file, read back by either spelling as the latest', async t => {
  const node = await startNode(t)
  await node.createVolume({ name: 'v' })
  const put1 = await httpRequest(node.apiUrl!, { method: 'PUT', path: filesUrl('v', `menus/${NFD}.txt`), body: 'first' })
  t.is(put1.status, 201, put1.body.toString())
  t.is(put1.json().path, `/menus/${NFC}.txt`, 'the answer names the NFC path')
  const put2 = await httpRequest(node.apiUrl!, { method: 'PUT', path: filesUrl('v', `menus/${NFC}.txt`), body: 'second' })
  t.is(put2.status, 201)
  const list = await httpRequest(node.apiUrl!, { path: '/v1/volumes/v/files' })
  t.deepEqual((list.json().files as Array<{ path: string }>).map(f => f.path), [`/menus/${NFC}.txt`])
  for (const spelling of [NFC, NFD]) {
    const got = await httpRequest(node.apiUrl!, { path: filesUrl('v', `menus/${spelling}.txt`) })
    t.is(got.status, 200)
    t.is(got.body.toString(), 'second')
  }
  // A listing prefix is normalised the same way.
  const byPrefix = await httpRequest(node.apiUrl!, { path: `/v1/volumes/v/files?prefix=${encodeURIComponent(`/menus/${NFD}`)}` })
  t.is((byPrefix.json().files as unknown[]).length, 1)
  // And a delete by the other spelling deletes it.
  const del = await httpRequest(node.apiUrl!, { method: 'DELETE', path: filesUrl('v', `menus/${NFD}.txt`) })
  t.is(del.status, 200)
  t.is((await httpRequest(node.apiUrl!, { path: filesUrl('v', `menus/${NFC}.txt`) })).status, 404)
})

test('HTTP: a right-to-left override (and other bidi controls) in a name is refused with 400 BAD_PATH', async t => {
  const node = await startNode(t)
  await node.createVolume({ name: 'v' })
  for (const name of [`invoice${RLO}fdp.exe`, 'a\u2066b', 'x\u200fy', 'zero\u200bwidth']) {
    for (const method of ['PUT', 'GET', 'DELETE']) {
      const r = await httpRequest(node.apiUrl!, { method, path: filesUrl('v', name), ...(method === 'PUT' ? { body: 'x' } : {}) })
      t.is(r.status, 400, `${method} ${JSON.stringify(name)}`)
      t.is(r.json().error.code, 'BAD_PATH')
    }
  }
  t.deepEqual(await paths(node, 'v'), [], 'nothing was written')
})

test('CLI: put normalises to NFC and refuses a right-to-left override with a clear one-line message', async t => {
  const dir = await tmpDir(t)
  const data = join(dir, 'data')
  await spawnNodeProcess(t, data)
  t.is((await runCli(['volume', 'create', 'v'], { dataDir: data })).code, 0)
  const local = join(dir, 'local.txt')
  await writeFile(local, 'hello')
  const ok = await runCli(['put', 'v', local, `/${NFD}.txt`], { dataDir: data })
  t.is(ok.code, 0, ok.stderr)
  const ls = await runCli(['ls', 'v', '--json'], { dataDir: data })
  t.true(ls.stdout.includes(`/${NFC}.txt`), ls.stdout)
  t.false(ls.stdout.includes(NFD))
  const got = await runCli(['get', 'v', `/${NFC}.txt`], { dataDir: data })
  t.is(got.stdout, 'hello', got.stderr)
  const bad = await runCli(['put', 'v', local, `/invoice${RLO}fdp.exe`], { dataDir: data })
  t.not(bad.code, 0)
  t.is(bad.stderr.trim().split('\n').length, 1, bad.stderr)
  t.regex(bad.stderr, /U\+202E.*\[BAD_PATH\]/)
})

test('a peer\'s record whose path is not NFC is refused as malformed and not applied; the node goes on', async t => {
  t.timeout(60_000) // without the check the record is applied and no refusal ever shows
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const vol = await a.createVolume({ name: 'v', replicas: [b.peerId] })
  await waitFor(async () => await b.store.getVolume('v'))
  // b writes a record the way no API of this version can: an NFD path, straight into its store.
  await b.store.commitFiles('v', async ({ get }) => {
    const current = await get('/' + NFD)
    return [{ v: RECORD_VERSION, path: '/' + NFD, size: 0, mode: 0o644, mtime: Date.now(), chunkSize: vol.chunkSize, chunks: new Uint8Array(0), vv: { ...(current?.vv ?? {}), [b.peerId]: 1 }, deleted: false }]
  })
  // a pulls it, refuses the page and says why.
  const member = await waitFor(async () => {
    const m = (await a.volumeInfo('v')).memberStates.find(s => s.peerId === b.peerId)
    return m?.lastError !== null && m?.lastError !== undefined ? m : undefined
  }, 100)
  t.regex(member.lastError!, /non-canonical path/)
  t.deepEqual(await paths(a, 'v'), [], 'the record was not applied')
  // a is still up and serving: its own writes reach b.
  await a.volumes.putFile('v', `/${NFC}-ok.txt`, bytes(Buffer.from('still here')))
  const got = await waitFor(async () => await read(b, 'v', `/${NFC}-ok.txt`).catch(() => undefined), 100)
  t.is(got.toString(), 'still here')
  t.deepEqual(await paths(a, 'v'), [`/${NFC}-ok.txt`])
})
