import '../core/polyfill.js'
import test from 'ava'
import { join } from 'node:path'
import { readdir, stat, writeFile } from 'node:fs/promises'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { Level } from 'level'
import { PackChunkStore } from '../store/pack-chunk-store.js'
import { readSyncedLengths } from '../store/pack-synced.js'
import { sha256 } from '../store/chunk-store.js'
import { LinkFaults } from '../replication/link-faults.js'
import { cutToSynced } from '../testing/power-loss.js'
import { tmpDir, spawnNodeProcess, httpRequest } from './helpers.js'

test('power loss: a testing pack store records fsynced lengths, and the cut keeps exactly them', async t => {
  const dir = await tmpDir(t)
  const db = new Level<string, Uint8Array>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  t.teardown(async () => { await db.close() })
  const loc = db.sublevel<Uint8Array, Uint8Array>('chunkloc', { keyEncoding: 'buffer', valueEncoding: 'view' })
  const chunks = join(dir, 'chunks')
  const packs = await PackChunkStore.open(chunks, loc, { recordSynced: true })
  const a = randomBytes(3000)
  await packs.putMany([{ hash: sha256(a), bytes: a }])
  await packs.sync()
  const [pack] = (await readdir(chunks)).filter(f => f.endsWith('.dat'))
  t.is((await readSyncedLengths(chunks)).get(pack), 3000)
  // Written, not synced: a power loss may lose it, and the cut does.
  const b = randomBytes(5000)
  await packs.putMany([{ hash: sha256(b), bytes: b }])
  t.is((await stat(join(chunks, pack))).size, 8000)
  const cut = await cutToSynced(dir)
  t.deepEqual(cut, { packs: 1, cut: 1, bytesCut: 5000 })
  t.is((await stat(join(chunks, pack))).size, 3000)
  await packs.close()
  // Without the option nothing is recorded (production nodes write no sidecar).
  const plain = await PackChunkStore.open(join(dir, 'plain'), db.sublevel<Uint8Array, Uint8Array>('other', { keyEncoding: 'buffer', valueEncoding: 'view' }))
  await plain.putMany([{ hash: sha256(a), bytes: a }])
  await plain.sync()
  t.is((await readSyncedLengths(join(dir, 'plain'))).size, 0)
  await plain.close()
})

test('seeded lossy links lose the same replies on every replay, and different ones for another seed', async t => {
  const losses = async (seed: string): Promise<string> => {
    const links = new LinkFaults()
    links.set(['peer'], { dropRate: 0.3 }, seed)
    let out = ''
    for (let i = 0; i < 64; i++) out += await links.pass('peer', 10).then(() => '.', () => 'x')
    return out
  }
  const first = await losses('s1')
  t.is(await losses('s1'), first)
  t.not(await losses('s2'), first)
  t.true(first.includes('x') && first.includes('.'))
})

test('crash points: POST /v1/faults/crash validates its body, and an armed point kills the node inside GC', async t => {
  const dataDir = await tmpDir(t)
  const node = await spawnNodeProcess(t, dataDir)
  const post = async (path: string, body: unknown): Promise<{ status: number, json: () => any }> => await httpRequest(node.url, { method: 'POST', path, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  const bad = await post('/v1/faults/crash', { point: 'nowhere' })
  t.is(bad.status, 400)
  t.is(bad.json().error.code, 'BAD_REQUEST')
  t.regex(bad.json().error.message, /gc-sweep/)
  t.is((await post('/v1/faults/crash', { point: 'gc-sweep', skip: -1 })).status, 400)
  t.is((await post('/v1/volumes', { name: 'v' })).status, 201)
  for (let i = 0; i < 3; i++) t.is((await httpRequest(node.url, { method: 'PUT', path: '/v1/volumes/v/files/f', body: randomBytes(20_000) })).status, 201)
  const armed = await post('/v1/faults/crash', { point: 'gc-sweep' })
  t.deepEqual(armed.json(), { crashes: { 'gc-sweep': 0 } })
  t.deepEqual((await httpRequest(node.url, { path: '/v1/faults' })).json().crashes, { 'gc-sweep': 0 })
  // Two overwritten versions are garbage: the sweep deletes their chunks, then the node dies.
  await post('/v1/gc', { youngSeconds: 0 }).catch(() => undefined)
  const exit = await node.exited
  t.is(exit.signal, 'SIGKILL')
  // It comes back, and a GC finishes the sweep.
  const again = await spawnNodeProcess(t, dataDir)
  const gc = await httpRequest(again.url, { method: 'POST', path: '/v1/gc', body: JSON.stringify({ youngSeconds: 0 }), headers: { 'content-type': 'application/json' } })
  t.is(gc.status, 200)
  t.is((await httpRequest(again.url, { path: '/v1/volumes/v/files/f' })).status, 200)
  await again.kill()
})

test('chaos CLI: a --dir that cannot be made is one line on stderr and exit 2, before any schedule runs', async t => {
  const dir = await tmpDir(t)
  const file = join(dir, 'a-file')
  await writeFile(file, 'not a directory')
  const cli = fileURLToPath(new URL('../bench/chaos.js', import.meta.url))
  const r = spawnSync(process.execPath, [cli, '--seed', 'dir', '--schedules', '1', '--dir', join(file, 'runs')], { encoding: 'utf8', timeout: 60_000 })
  t.is(r.status, 2, r.stderr)
  t.regex(r.stderr, /^chaos: --dir .*a-file\/runs: (ENOTDIR|EEXIST)\n$/)
  t.false(r.stdout.includes('passed'), 'no schedule ran')
})
