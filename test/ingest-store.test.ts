import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { startNode, pieces, collect, sha256Hex } from './helpers.js'
import { ChunkBuffers, fixedChunks } from '../core/chunker.js'
import { hashHex } from '../store/chunk-store.js'
import { chunkHashes } from '../core/records.js'
import type { ReplicantNode } from '../node/replicant-node.js'

const K64 = 64 * 1024

async function heldChunks (node: ReplicantNode): Promise<Set<string>> {
  const out = new Set<string>()
  for await (const k of node.store.chunks.keys()) out.add(hashHex(k))
  return out
}

test('ChunkBuffers: a given-back chunk is handed out again; views of other buffers and surplus ones are not kept', t => {
  const pool = new ChunkBuffers(4096, 2)
  const a = pool.take()
  const b = pool.take()
  t.is(a.byteLength, 4096)
  t.not(a.buffer, b.buffer)
  pool.give(a.subarray(0, 10)) // a short last chunk: its whole buffer comes back
  t.is(pool.take().buffer, a.buffer)
  pool.give(new Uint8Array(8192).subarray(0, 4096)) // not one of ours (its buffer is larger)
  pool.give(new Uint8Array(4096).subarray(1)) // not at offset 0
  t.not(pool.take().buffer, b.buffer)
  pool.give(a)
  pool.give(b)
  pool.give(new Uint8Array(4096)) // a third: over max
  const kept = [pool.take().buffer, pool.take().buffer]
  t.true(kept.includes(a.buffer) && kept.includes(b.buffer))
  t.false([a.buffer, b.buffer].includes(pool.take().buffer))
})

test('fixedChunks with ChunkBuffers: chunks are copies in pool buffers, the source untouched', async t => {
  const pool = new ChunkBuffers(K64, 8)
  const bytes = randomBytes(3 * K64 + 5)
  const copy = Buffer.from(bytes)
  const chunks: Uint8Array[] = []
  for await (const c of fixedChunks(pieces(bytes, [K64, 1000, 2 * K64]), K64, pool)) chunks.push(c)
  t.deepEqual(chunks.map(c => c.byteLength), [K64, K64, K64, 5])
  for (const c of chunks) t.is(c.buffer.byteLength, K64)
  t.deepEqual(Buffer.concat(chunks), copy)
  t.deepEqual(bytes, copy)
})

test('concurrent puts reusing chunk buffers: every file reads back whole (short last chunks, deduplicated chunks, batches over 64 chunks)', async t => {
  const node = await startNode(t, { api: false })
  await node.volumes.createVolume({ name: 'v' })
  const shared = randomBytes(K64)
  const contents = Array.from({ length: 24 }, (_, i) => {
    if (i % 4 === 0) return Buffer.concat([shared, shared, randomBytes(i * 100)]) // chunks held already or written by a neighbour
    if (i % 4 === 1) return randomBytes(70 * K64 + i) // more than one write batch
    return randomBytes(1000 + i * 517)
  })
  // Twice: the second round runs on buffers the first one gave back.
  for (const round of [0, 1]) {
    await Promise.all(contents.map(async (bytes, i) => await node.volumes.putFile('v', `/r${round}/f${i}`, pieces(bytes, [4096 + 7, K64 + 3]))))
  }
  for (const round of [0, 1]) {
    for (const [i, bytes] of contents.entries()) {
      const rec = await node.volumes.stat('v', `/r${round}/f${i}`)
      t.is(sha256Hex(await collect(node.volumes.readFile('v', rec))), sha256Hex(bytes), `round ${round} file ${i}`)
    }
  }
})

test('one chunk referenced by commits of the same group is counted once per commit: it survives GC until the last reference goes', async t => {
  const node = await startNode(t, { api: false })
  await node.volumes.createVolume({ name: 'v' })
  const bytes = randomBytes(1000)
  const groupsBefore = node.store.counters.groups
  const recs = await Promise.all(Array.from({ length: 8 }, async (_, i) => await node.volumes.putFile('v', `/same-${i}`, pieces(bytes, [1000]))))
  // Eight commits in fewer groups: some group held several references to the one chunk.
  t.true(node.store.counters.groups - groupsBefore < 8, `${node.store.counters.groups - groupsBefore} groups`)
  const hex = hashHex([...chunkHashes(recs[0])][0])
  for (const i of [0, 1, 2, 3, 4, 5, 6]) {
    await node.volumes.removeFile('v', `/same-${i}`)
    await node.store.collectGarbage({ youngMs: 0 })
    t.true((await heldChunks(node)).has(hex), `chunk kept after deleting ${i + 1} of 8`)
  }
  t.deepEqual(await collect(node.volumes.readFile('v', await node.volumes.stat('v', '/same-7'))), bytes)
  await node.volumes.removeFile('v', '/same-7')
  await node.store.collectGarbage({ youngMs: 0 })
  t.false((await heldChunks(node)).has(hex))
})

test('the volume record a commit writes is the one read next (the cached record follows every write)', async t => {
  const node = await startNode(t, { api: false })
  await node.volumes.createVolume({ name: 'v' })
  for (const i of [1, 2, 3]) {
    await node.volumes.putFile('v', `/f${i}`, pieces(randomBytes(10), [10]))
    t.is((await node.volumes.volume('v')).seq, i)
  }
  await node.store.updateVolume('v', vol => ({ ...vol, chunkSize: 4096 }))
  t.is((await node.volumes.volume('v')).chunkSize, 4096)
  const rec = await node.volumes.putFile('v', '/g', pieces(randomBytes(5000), [5000]))
  t.is(rec.chunkSize, 4096)
  t.is(rec.seq, 4)
})
