import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { startNode, randomSource, sha256Stream } from './helpers.js'
import { converged, bytes } from './replication-helpers.js'
import { INLINE_CHUNK_LIST_BYTES, CHUNK_LIST_PART_BYTES } from '../protocols/constants.js'
import type { ReplicantNode } from '../node/replicant-node.js'

const MiB = 1024 * 1024

async function digest (node: ReplicantNode, volume: string, path: string): Promise<string> {
  const rec = await node.volumes.stat(volume, path)
  return (await sha256Stream(node.volumes.readFile(volume, rec))).hex
}

// 4 KiB chunks make long chunk lists from files of a test's size: a 136 MiB file has 34,816
// chunks, a 1.06 MiB list, which travels split in two parts after its index page.
test('a file whose chunk list is over one frame replicates (split in parts), and later writes still arrive', async t => {
  t.timeout(240_000)
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'big', chunkSize: 4096, replicas: [b.peerId] })
  const src = randomSource(136 * MiB)
  const rec = await a.volumes.putFile('big', '/disk.img', src.source)
  t.true(rec.chunks.byteLength > CHUNK_LIST_PART_BYTES, 'the list needs more than one part')
  await a.volumes.putFile('big', '/after', bytes(Buffer.from('written after the big file')))
  await converged([a, b], 'big', tr => tr.length === 2)
  t.is(await digest(b, 'big', '/disk.img'), src.digest())
  t.is((await b.volumes.stat('big', '/disk.img')).chunks.byteLength, rec.chunks.byteLength)

  // all mode with a long list (a prepare splits only a list over one frame: 640 MiB at 4 KiB
  // chunks, checked by `node dist/bench/long-record-check.js 700 --all`, not here).
  await a.setWriteMode('big', 'all')
  const src2 = randomSource(40 * MiB)
  const rec2 = await a.volumes.putFile('big', '/second.img', src2.source)
  t.true(rec2.chunks.byteLength > INLINE_CHUNK_LIST_BYTES)
  // Visible on b when the write returns.
  t.is(await digest(b, 'big', '/second.img'), src2.digest())
  await b.volumes.putFile('big', '/from-b', bytes(randomBytes(1000)))
  await converged([a, b], 'big', tr => tr.length === 4)
})
