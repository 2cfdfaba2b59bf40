import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { startNode, runCli, waitFor } from './helpers.js'
import { bytes, converged, paths } from './replication-helpers.js'
import { ReplicantClient } from '../api/client.js'
import { ReplicantError, Codes } from '../core/errors.js'
import type { ReplicantNode } from '../node/replicant-node.js'

async function chunkCount (node: ReplicantNode): Promise<number> {
  let n = 0
  for await (const key of node.store.chunks.keys()) n += key.byteLength > 0 ? 1 : 0
  return n
}

test('volume drop deletes a former member\'s replica whole (gc gives the space back), and is refused while a member', async t => {
  t.timeout(120_000)
  const a = await startNode(t)
  // Small packs: repack never rewrites the active pack, so only sealed ones give space back.
  const b = await startNode(t, { join: [a.multiaddrs()[0]], packTargetBytes: 64 * 1024 })
  await a.createVolume({ name: 'old', replicas: [b.peerId] })
  for (let i = 0; i < 5; i++) await a.volumes.putFile('old', `/f${i}`, bytes(randomBytes(100_000)))
  await converged([a, b], 'old', tr => tr.length === 5)
  await b.volumes.createSnapshot('old', 'before')
  t.true(await chunkCount(b) > 0)
  t.true((await b.diskUsage()).packBytes >= 500_000)

  const refused = await runCli(['volume', 'drop', 'old'], { dataDir: b.dataDir })
  t.not(refused.code, 0)
  t.regex(refused.stderr, /STILL_A_MEMBER/)
  const client = new ReplicantClient(b.apiUrl!)
  const err = await t.throwsAsync(client.dropVolume('old'), { instanceOf: ReplicantError })
  t.is(err?.code, Codes.STILL_A_MEMBER)

  await a.removeReplica('old', b.peerId)
  await waitFor(async () => (await b.volumeInfo('old')).state === 'removed' ? true : undefined, 100)
  const dropped = await runCli(['volume', 'drop', 'old'], { dataDir: b.dataDir })
  t.is(dropped.code, 0, dropped.stderr)
  t.regex(dropped.stdout, /volume old \(id [0-9a-f]+\) dropped from this node: 5 files/)
  t.deepEqual((await b.listVolumes()).map(v => v.name), [])
  const gc = await b.collectGarbage({ youngSeconds: 0 })
  t.true(gc.deleted > 0)
  t.is(await chunkCount(b), 0, 'every chunk of the dropped replica (and of its snapshot) is reclaimed')
  t.true(gc.repack.packsRemoved > 0)
  t.true(gc.disk.packBytes <= 2 * 64 * 1024, `pack bytes after gc: ${gc.disk.packBytes}`)
  // The remaining member is untouched.
  t.is((await paths(a, 'old')).length, 5)
})
