/**
 * Regression tests of issue 13: a failed on-demand read must not poison its chunk, concurrent
 * writes to one path must each get their own ordered vector, a member that voted yes keeps
 * its prepared copy until it learns the decision, and a wannabe removed mid-copy and added
 * back resumes its copy.
 */
import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { startNode, waitFor, httpRequest, sleep, randomSource, sha256Stream } from './helpers.js'
import { converged, bytes, read } from './replication-helpers.js'
import { compare } from '../core/version-vector.js'
import type { ReplicantNode } from '../node/replicant-node.js'
import { chunkHashes, type FileRecord } from '../core/records.js'

async function hasFile (node: ReplicantNode, volume: string, path: string): Promise<true | undefined> {
  try { await node.volumes.stat(volume, path); return true } catch { return undefined }
}

async function cut (x: ReplicantNode, y: ReplicantNode): Promise<void> {
  await Promise.all([x.peers.block([y.peerId]), y.peers.block([x.peerId])])
}

function heal (x: ReplicantNode, y: ReplicantNode): void {
  x.peers.unblock([y.peerId])
  y.peers.unblock([x.peerId])
}

test('a wannabe read that failed while the only holder was cut off succeeds once it is back, and leaves no reader behind', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'od' })
  const data = randomBytes(4 * 65536)
  await a.volumes.putFile('od', '/f', bytes(data))
  const b = await startNode(t, { api: '127.0.0.1:0', join: [a.multiaddrs()[0]], copyConcurrency: 0, readTimeoutMs: 5000 })
  await a.sync.addReplica('od', b.peerId)
  await waitFor(async () => await hasFile(b, 'od', '/f'))
  const range = { path: '/v1/volumes/od/files/f', headers: { range: 'bytes=65536-131071' } }
  await cut(a, b)
  await waitFor(() => !b.peers.isConnected(a.peerId) ? true : undefined)
  const failed = await httpRequest(b.apiUrl!, range)
  t.is(failed.status, 503, 'no member reachable: the read fails')
  heal(a, b)
  await waitFor(() => b.peers.isConnected(a.peerId) ? true : undefined)
  const res = await httpRequest(b.apiUrl!, range)
  t.is(res.status, 206, `the same read once the holder is back: ${res.body.toString().slice(0, 200)}`)
  t.deepEqual(res.body, data.subarray(65536, 131072))
  t.is(b.sync.reader.active, 0, 'no fetch is left counted as active')
})

for (const writeMode of ['all', 'active'] as const) {
  test(`8 concurrent PUTs to one path (${writeMode} mode): every acknowledged write has its own vector, totally ordered, and the greatest wins everywhere`, async t => {
    const a = await startNode(t, { api: '127.0.0.1:0' })
    const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
    const c = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
    await a.createVolume({ name: 'race', replicas: [b.peerId, c.peerId], writeMode })
    await waitFor(async () => (await b.store.getVolume('race')) !== undefined && (await c.store.getVolume('race')) !== undefined ? true : undefined)
    await waitFor(() => a.peers.isConnected(b.peerId) && a.peers.isConnected(c.peerId) ? true : undefined)
    const contents = Array.from({ length: 8 }, (_, i) => Buffer.from(`content ${i} ${randomBytes(8).toString('hex')}`))
    const answers = await Promise.all(contents.map(async body =>
      await httpRequest(a.apiUrl!, { method: 'PUT', path: '/v1/volumes/race/files/same', headers: { 'content-length': body.byteLength }, body })))
    t.deepEqual(answers.map(r => r.status), contents.map(() => 201), answers.map(r => r.body.toString()).join('\n'))
    const acked = answers.map((r, i) => ({ vv: r.json().version as Record<string, number>, body: contents[i] }))
    // Totally ordered: every pair compares greater or lesser (never equal, never concurrent).
    for (let i = 0; i < acked.length; i++) {
      for (let j = i + 1; j < acked.length; j++) {
        const order = compare(acked[i].vv, acked[j].vv)
        t.true(order === 'greater' || order === 'lesser', `write ${i} ${JSON.stringify(acked[i].vv)} vs write ${j} ${JSON.stringify(acked[j].vv)}: ${order}`)
      }
    }
    const last = acked.reduce((x, y) => compare(y.vv, x.vv) === 'greater' ? y : x)
    await converged([a, b, c], 'race', tr => tr.length === 1)
    for (const n of [a, b, c]) {
      const rec = await n.volumes.stat('race', '/same')
      t.is(compare(rec.vv, last.vv), 'equal', 'every member holds the greatest acknowledged vector')
      t.deepEqual(await read(n, 'race', '/same'), last.body, 'with the content acknowledged under it')
    }
  })
}

test('an all-mode member whose prepared write expires while the coordinator is unreachable keeps it in doubt, and commits it once a member that committed tells it', async t => {
  const expiry = { preparedExpiryMs: 1000 }
  const a = await startNode(t, { api: false, ...expiry })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]], ...expiry })
  // c joins b too, so the two know each other's addresses once they are cut off from the rest.
  const c = await startNode(t, { api: false, join: [a.multiaddrs()[0], b.multiaddrs()[0]], ...expiry })
  await a.createVolume({ name: 'doubt', replicas: [b.peerId, c.peerId], writeMode: 'all' })
  await waitFor(async () => (await b.store.getVolume('doubt')) !== undefined && (await c.store.getVolume('doubt')) !== undefined ? true : undefined)
  await waitFor(() => a.peers.isConnected(b.peerId) && a.peers.isConnected(c.peerId) ? true : undefined)
  // b cannot ask c; and b is cut off from the coordinator the moment it has decided commit
  // (as if it crashed after its decision): c hears the commit, b never does.
  await cut(b, c)
  const commitFiles = a.store.commitFiles.bind(a.store)
  let armed = true
  a.store.commitFiles = async (vol, decide) => {
    let decided = false
    const out = await commitFiles(vol, async ctx => {
      const settle = ctx.settleTx
      ctx.settleTx = txId => { decided = true; settle(txId) }
      return await decide(ctx)
    })
    if (armed && decided) { armed = false; await cut(a, b) }
    return out
  }
  const data = randomBytes(100_000)
  const rec: FileRecord = await a.volumes.putFile('doubt', '/x', bytes(data))
  t.deepEqual(await read(c, 'doubt', '/x'), data, 'acknowledged: c committed it')
  const [prepared] = await b.store.listPrepared('doubt')
  t.truthy(prepared, 'b voted yes and holds the prepared write')
  // Well past the expiry, with nobody to ask: b keeps it, in doubt, and says so.
  await sleep(3000)
  t.truthy(await b.store.getPrepared('doubt', prepared.txId), 'kept past the expiry')
  t.is(await b.store.txState('doubt', prepared.txId), undefined, 'not aborted')
  const info = await b.volumeInfo('doubt')
  t.is(info.inDoubt.count, 1)
  t.deepEqual(info.inDoubt.txIds, [prepared.txId])
  // c, which committed, becomes reachable: b learns the decision from it.
  heal(b, c)
  await waitFor(async () => await b.store.txState('doubt', prepared.txId) === 'commit' ? true : undefined, 100)
  t.deepEqual(await read(b, 'doubt', '/x'), data)
  t.is(compare((await b.volumes.stat('doubt', '/x')).vv, rec.vv), 'equal')
  t.is((await b.volumeInfo('doubt')).inDoubt.count, 0)
})

test('a wannabe removed in the middle of its copy and added back resumes the copy and ends steady holding every chunk', async t => {
  t.timeout(240_000)
  const MiB = 1024 * 1024
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'back' })
  const digests = new Map<string, string>()
  for (let i = 0; i < 3; i++) {
    const src = randomSource(16 * MiB)
    await a.volumes.putFile('back', `/f${i}`, src.source)
    digests.set(`/f${i}`, src.digest())
  }
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]], copyConcurrency: 1 })
  await a.sync.addReplica('back', b.peerId)
  await waitFor(() => b.sync.copy.counters.bytesReceived >= 4 * MiB ? true : undefined, 10)
  await a.sync.removeReplica('back', b.peerId)
  await waitFor(async () => (await b.store.requireVolume('back')).state === 'removed' ? true : undefined, 20)
  const held = b.sync.fetcher.counters.bytesReceived
  t.true(held < 48 * MiB, `removed mid-copy (${held} bytes fetched)`)
  await a.sync.addReplica('back', b.peerId)
  await waitFor(async () => {
    const vol = await b.store.requireVolume('back')
    return vol.members.includes(b.peerId) && vol.state !== 'removed' ? true : undefined
  }, 20)
  await waitFor(async () => (await b.store.requireVolume('back')).state === 'steady' ? true : undefined, 100)
  for (const path of digests.keys()) {
    const rec = await b.store.getFile('back', path)
    t.truthy(rec, path)
    t.true((await b.store.chunks.hasMany([...chunkHashes(rec!)])).every(Boolean), `steady holds every chunk of ${path}`)
  }
  await converged([a, b], 'back', tr => tr.length === 3)
  // The bytes, read from b's own store (a is cut off, so nothing is fetched on demand).
  await Promise.all([a.peers.block([b.peerId]), b.peers.block([a.peerId])])
  for (const [path, hex] of digests) {
    const rec = await b.volumes.stat('back', path)
    t.is((await sha256Stream(b.volumes.readFile('back', rec))).hex, hex, path)
  }
})
