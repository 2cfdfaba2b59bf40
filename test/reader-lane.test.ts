import '../core/polyfill.js'
import test from 'ava'
import { startNode, waitFor, randomSource, sleep } from './helpers.js'
import { chunkHashes } from '../core/records.js'
import type { ReplicantNode } from '../node/replicant-node.js'

const MiB = 1024 * 1024
/** The holder's replies to the wannabe are capped at this rate, so bulk frames queue at the holder. */
const RATE = 4 * MiB
/** Time one bulk frame (16 chunks of 64 KiB, 1 MiB) takes on the capped link. */
const FRAME_MS = 1000 * MiB / RATE

async function hasFile (node: ReplicantNode, volume: string, path: string): Promise<true | undefined> {
  try { await node.volumes.stat(volume, path); return true } catch { return undefined }
}

test('a lazy read is served ahead of the background copy\'s queued bulk frames', async t => {
  t.timeout(180_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'big' })
  for (let i = 0; i < 4; i++) await a.volumes.putFile('big', `/f${i}.bin`, randomSource(20 * MiB).source)
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]], readTimeoutMs: 120_000 })
  a.links.set([b.peerId], { bytesPerSecond: RATE })
  await a.sync.addReplica('big', b.peerId)
  await waitFor(async () => await hasFile(b, 'big', '/f3.bin'))
  // The copy is in flight: its want-lists (4 in flight, 1 MiB each) are queued at the holder.
  await waitFor(() => b.sync.copy.counters.bytesReceived >= 2 * MiB ? true : undefined, 20)
  const vol = (await b.store.getVolume('big'))!
  const rec = await b.volumes.stat('big', '/f3.bin')
  const all = [...chunkHashes(rec)].reverse()
  const held = await b.store.chunks.hasMany(all)
  const missing = all.filter((_, i) => !held[i]).slice(0, 9)
  t.is(missing.length, 9, 'the copy has not reached the end of the last file yet')
  const latencies: number[] = []
  for (const hash of missing) {
    // The copy's workers stop sending while a read waits; a pause lets them fill the holder's queue again.
    await sleep(FRAME_MS)
    const t0 = performance.now()
    await b.sync.reader.get(vol, hash)
    latencies.push(performance.now() - t0)
  }
  t.true(b.sync.copy.counters.bytesReceived < 70 * MiB, 'the reads ran while the copy was still in flight')
  latencies.sort((x, y) => x - y)
  const median = latencies[Math.floor(latencies.length / 2)]
  t.log(`read latencies (ms) ${latencies.map(x => x.toFixed(0)).join(' ')}; one bulk frame takes ${FRAME_MS} ms on the link`)
  // Behind at most the one bulk frame already on its way (not behind every copy stream's next frame).
  t.true(median < 2 * FRAME_MS, `median read latency ${median.toFixed(0)} ms is under two bulk frames (${2 * FRAME_MS} ms)`)
  a.links.clear()
})
