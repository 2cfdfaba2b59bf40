import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { startNode, waitFor } from './helpers.js'
import { bytes, read } from './replication-helpers.js'
import { chunkHashes } from '../core/records.js'

test('a steady member restarted while it lacks a chunk of a live record says so (repairing) and repairs it', async t => {
  t.timeout(120_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'v' })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.sync.addReplica('v', b.peerId)
  await waitFor(async () => (await b.store.getVolume('v'))?.state === 'steady' ? true : undefined)
  // b takes the record of a's write but rejects its chunk (a serves corrupt bytes): repairing.
  a.faults.serveCorruptChunks = true
  const data = randomBytes(5000)
  const rec = await a.volumes.putFile('v', '/g', bytes(data))
  await waitFor(async () => await b.store.getFile('v', '/g') !== undefined && b.sync.needsRepair.has('v') ? true : undefined)
  const dataDir = b.dataDir
  await b.stop()
  // Restarted while a's replies to it are all lost: the chunk cannot come, and b must say it lacks it.
  a.faults.serveCorruptChunks = false
  const b2 = await startNode(t, { api: false, dataDir, join: [a.multiaddrs()[0]] })
  a.links.set([b2.peerId], { dropRate: 1 })
  const info = await waitFor(async () => {
    const i = await b2.volumeInfo('v')
    return i.repairing ? i : undefined
  })
  t.is(info.state, 'steady')
  t.false((await b2.store.chunks.hasMany([...chunkHashes(rec)]))[0])
  a.links.clear()
  await waitFor(async () => !(await b2.volumeInfo('v')).repairing ? true : undefined, 100)
  t.true((await b2.store.chunks.hasMany([...chunkHashes(rec)]))[0], 'the chunk was fetched')
  t.deepEqual(await read(b2, 'v', '/g'), data)
})
