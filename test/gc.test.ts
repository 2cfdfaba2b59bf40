import '../core/polyfill.js'
import test from 'ava'
import { randomBytes, createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { startNode, tmpDir, spawnNodeProcess, httpRequest, clientOf } from './helpers.js'
import { bytes, read } from './replication-helpers.js'
import { chunkHashes } from '../core/records.js'
import { hashHex } from '../store/chunk-store.js'
import type { ReplicantNode } from '../node/replicant-node.js'

async function heldChunks (node: ReplicantNode): Promise<Set<string>> {
  const out = new Set<string>()
  for await (const k of node.store.chunks.keys()) out.add(hashHex(k))
  return out
}

test('gc reclaims exactly the chunks nothing references, and keeps what snapshots and live files need', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'g' })
  const keep = await a.volumes.putFile('g', '/keep', bytes(randomBytes(200_000)))
  const snapped = await a.volumes.putFile('g', '/snapped', bytes(randomBytes(200_000)))
  const dropped = await a.volumes.putFile('g', '/dropped', bytes(randomBytes(200_000)))
  await a.volumes.createSnapshot('g', 's')
  await a.volumes.putFile('g', '/snapped', bytes(Buffer.from('new version')))
  await a.volumes.removeFile('g', '/dropped')
  // Delete the snapshot's versions of /dropped only: a second snapshot-free volume state.
  const before = await heldChunks(a)
  const r1 = await a.store.collectGarbage({ youngMs: 0 })
  t.is(r1.deleted, 0, 'the snapshot still shows /snapped and /dropped: nothing to reclaim')
  await a.store.deleteSnapshot('g', 's')
  const r2 = await a.store.collectGarbage({ youngMs: 0 })
  const after = await heldChunks(a)
  const expectGone = new Set([...chunkHashes(snapped), ...chunkHashes(dropped)].map(hashHex))
  t.is(r2.deleted, expectGone.size)
  t.deepEqual([...before].filter(h => !after.has(h)).sort(), [...expectGone].sort(), 'exactly the unreferenced chunks went')
  for (const h of chunkHashes(keep)) t.true(after.has(hashHex(h)))
  t.is((await read(a, 'g', '/keep')).byteLength, 200_000)
  t.is((await read(a, 'g', '/snapped')).toString(), 'new version')
})

test('gc leaves chunks of writes in progress alone', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'y' })
  // Chunks written moments ago by a write that has not committed yet look unreferenced.
  const orphan = { hash: createHash('sha256').update('in flight').digest(), bytes: Buffer.from('in flight') }
  await a.store.chunks.putMany([orphan])
  t.is((await a.store.collectGarbage()).deleted, 0, 'young chunks are kept (default: 10 minutes)')
  t.true(await a.store.chunks.has(orphan.hash))
  t.is((await a.store.collectGarbage({ youngMs: 0 })).deleted, 1)
})

test('gc killed with -9 in the middle loses nothing still referenced, and a rerun finishes', async t => {
  t.timeout(180_000)
  const dir = await tmpDir(t)
  const n = await spawnNodeProcess(t, `${dir}/n`)
  const c = clientOf(n)
  await c.createVolume({ name: 'k', chunkSize: 4096 })
  const live = new Map<string, string>()
  for (let i = 0; i < 20; i++) {
    const data = randomBytes(40_000)
    await c.put('k', `/live/${i}`, Readable.from([data]), { size: data.byteLength })
    live.set(`/live/${i}`, createHash('sha256').update(data).digest('hex'))
  }
  // Garbage: many chunks no record references any more.
  for (let i = 0; i < 30; i++) {
    const data = randomBytes(400_000)
    await c.put('k', `/junk/${i}`, Readable.from([data]), { size: data.byteLength })
    await c.remove('k', `/junk/${i}`)
  }
  const gc = httpRequest(n.url, { method: 'POST', path: '/v1/gc', body: JSON.stringify({ youngSeconds: 0 }), headers: { 'content-type': 'application/json' } }).catch(() => undefined)
  await new Promise(resolve => setTimeout(resolve, 30))
  await n.kill('SIGKILL')
  await gc
  const n2 = await spawnNodeProcess(t, `${dir}/n`)
  const c2 = clientOf(n2)
  for (const [path, hex] of live) {
    const parts: Buffer[] = []
    for await (const p of await c2.open('k', path)) parts.push(p as Buffer)
    t.is(createHash('sha256').update(Buffer.concat(parts)).digest('hex'), hex, path)
  }
  const r = await c2.gc(0)
  t.true(r.kept >= 20 * 10, 'live chunks kept')
  const again = await c2.gc(0)
  t.is(again.deleted, 0, 'nothing left to collect')
  await n2.kill()
})
