import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { startNode, waitFor } from './helpers.js'
import { bytes, converged, read } from './replication-helpers.js'
import { chunkHashes } from '../core/records.js'
import type { ReplicantNode } from '../node/replicant-node.js'

async function stateOf (node: ReplicantNode, volume: string): Promise<string> {
  return (await node.store.getVolume(volume))?.state ?? 'steady'
}

async function blockBoth (x: ReplicantNode, y: ReplicantNode): Promise<void> {
  await x.peers.block([y.peerId])
  await y.peers.block([x.peerId])
}

/**
 * Chaos w4e/1, w4e/10, long4-a/40: the bytes of a conflict copy lost on every member, and the
 * members that need them stuck in merge or copy for ever. m applies a's first version without
 * its chunk (the fetch failed: repairing), a supersedes that version and collects its chunk,
 * then m meets b's concurrent version. A copy of a's first version made on m would name bytes
 * no member holds any more.
 */
test('a member that lacks the losing version\'s bytes makes no conflict copy of them: every file stays readable everywhere', async t => {
  t.timeout(180_000)
  const a = await startNode(t, { api: false, readTimeoutMs: 3_000 })
  await a.createVolume({ name: 'cc' })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]], readTimeoutMs: 3_000 })
  const m = await startNode(t, { api: false, join: [a.multiaddrs()[0]], readTimeoutMs: 3_000 })
  await a.sync.addReplica('cc', b.peerId)
  await a.sync.addReplica('cc', m.peerId)
  await waitFor(async () => (await Promise.all([b, m].map(async n => await stateOf(n, 'cc')))).every(s => s === 'steady') ? true : undefined)
  await blockBoth(b, a)
  await blockBoth(b, m)

  // a's first version reaches m without its chunk: a serves corrupt bytes, which m rejects.
  a.faults.serveCorruptChunks = true
  const first = await a.volumes.putFile('cc', '/f.txt', bytes(randomBytes(3000)), { mtime: 1_000 })
  await waitFor(async () => (await m.store.getFile('cc', '/f.txt'))?.vv[a.peerId] === 1 ? true : undefined)
  t.false((await m.store.chunks.hasMany([...chunkHashes(first)]))[0], 'm holds the record, not its chunk')
  await blockBoth(m, a)
  a.faults.serveCorruptChunks = false
  // a supersedes it and collects its chunk: those bytes are now nowhere.
  await a.volumes.putFile('cc', '/f.txt', bytes(randomBytes(2000)), { mtime: 2_000 })
  await a.store.collectGarbage({ youngMs: 0 })
  t.false((await a.store.chunks.hasMany([...chunkHashes(first)]))[0], 'a collected its superseded chunk')

  // b's concurrent version meets a's first one on m.
  await b.volumes.putFile('cc', '/f.txt', bytes(randomBytes(1000)), { mtime: 3_000 })
  m.peers.unblock()
  b.peers.unblock()
  a.peers.unblock()
  // Converged on the resolution of b's write against a's second one (both in the vector).
  const resolved = async (n: ReplicantNode): Promise<boolean> => {
    const f = await n.store.getFile('cc', '/f.txt')
    return f?.vv[a.peerId] === 2 && f?.vv[b.peerId] === 1
  }
  await waitFor(async () => (await Promise.all([a, b, m].map(resolved))).every(Boolean) ? true : undefined)
  const files = await converged([a, b, m], 'cc')
  t.is(files.length, 2, `the file and one conflict copy (b's write against a's second): ${files.join('; ')}`)
  for (const n of [a, b, m]) {
    for (const line of files) {
      const path = line.split(' ')[0]
      await t.notThrowsAsync(async () => await read(n, 'cc', path), `${path} readable`)
    }
  }
  await waitFor(async () => (await Promise.all([a, b, m].map(async n => await stateOf(n, 'cc')))).every(s => s === 'steady') && [a, b, m].every(n => !n.sync.needsRepair.has('cc')) ? true : undefined)
})
