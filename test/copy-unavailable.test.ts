import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { startNode, waitFor } from './helpers.js'
import { bytes } from './replication-helpers.js'
import { chunkHashes } from '../core/records.js'

/**
 * A copy whose chunks no reachable member holds cannot finish (chaos w4e/10: conflict copies
 * whose only bytes were gone on every member kept all three in `merge`). Status must say what
 * is lacking, by file, rather than wait silently; and the copy must finish once the bytes are
 * back.
 */
test('a wannabe whose chunks no member holds names the files it lacks, and finishes when they come back', async t => {
  t.timeout(120_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'v' })
  const lostBytes = randomBytes(5000)
  const lost = await a.volumes.putFile('v', '/docs/lost.bin', bytes(lostBytes))
  await a.volumes.putFile('v', '/ok.bin', bytes(randomBytes(7000)))
  // The only holder loses the bytes of one file (as a GC or a crash on its writer may).
  const hashes = [...chunkHashes(lost)]
  t.is(hashes.length, 1)
  await a.store.chunks.delete(hashes)
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  await a.sync.addReplica('v', b.peerId)
  const info = await waitFor(async () => {
    const v = await b.volumeInfo('v') as any
    return v?.progress?.unavailable != null ? v : undefined
  }, 100)
  t.is(info.state, 'copy')
  t.deepEqual(info.progress.unavailable, { chunks: hashes.length, paths: ['/docs/lost.bin'] })
  t.regex(info.progress.lastError as string, /needed by \/docs\/lost\.bin/)
  // The bytes come back on the holder: the copy retries, finishes, and says nothing is lacking.
  await a.store.chunks.putMany([{ hash: hashes[0], bytes: new Uint8Array(lostBytes) }])
  await waitFor(async () => (await b.store.getVolume('v'))?.state === 'steady' ? true : undefined, 200)
  t.true((await b.store.chunks.hasMany(hashes)).every(Boolean))
})
