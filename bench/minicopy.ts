/**
 * minicopy (issue 5): A and B members of one volume (--full: 8 x 128 MiB + 10,000 x 16 KiB).
 * Full copy: B cut off while the volume is written on A, then the partition lifted; time to B
 * converged. Then B is stopped (clean shutdown), 1% of the data changes on A (64 KiB rewritten
 * inside every large file, 100 small files rewritten), B restarted: time until B has applied
 * A's whole change log (its watermark for A reaches A's head, steady, nothing lacking), and the
 * chunk bytes it received (its own fetch counters), as a ratio to the changed bytes.
 */
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { KiB, MiB, fmt, fmtBytes, now, ratio, type Suite, type SuiteContext } from './lib.js'
import { VOLUME, dataSet, type DataSet, fetchedBytes, peakRss, putFiles, restartNode, startCluster, waitConverged } from './cluster.js'
import { countedBytes, countedStream } from './data.js'
import type { NodeProcess } from './node-proc.js'

function sizes (ctx: SuiteContext): DataSet & { smallChanged: number } {
  return { ...dataSet(ctx, { bigCount: 2, bigSize: 32 * MiB, smallCount: 500 }), smallChanged: ctx.pick({ quick: 20, standard: 50, full: 100 }) }
}

const SMALL = 16 * KiB
const CHUNK = 64 * KiB

/** File `id` of `size` counted bytes with the 64 KiB chunk at `chunk` replaced by other bytes. */
function * changed (id: number, size: number, chunk: number): Generator<Buffer> {
  const start = chunk * CHUNK
  let off = 0
  for (const piece of countedStream(id, size)) {
    if (start >= off && start < off + piece.byteLength) countedBytes(900_000 + id, CHUNK).copy(piece, start - off)
    off += piece.byteLength
    yield piece
  }
}

async function caughtUp (b: NodeProcess, a: NodeProcess, files: number, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    try {
      const [ia, ib] = await Promise.all([a.client.volumeInfo(VOLUME), b.client.volumeInfo(VOLUME)])
      const wm = (ib.memberStates as Array<{ peerId: string, watermark: number | null }>).find(m => m.peerId === a.peerId)?.watermark ?? 0
      if (wm >= ia.seq && ib.files === files && ib.state === 'steady' && ib.lacking.files === 0 && !ib.repairing) return
    } catch { /* not there yet: poll again */ }
    await sleep(50)
  }
  throw new Error('B did not catch up')
}

async function run (ctx: SuiteContext): Promise<void> {
  const sz = sizes(ctx)
  const files = sz.bigCount + sz.smallCount
  const total = sz.bigCount * sz.bigSize + sz.smallCount * SMALL
  const { nodes: [a, b0] } = await startCluster(ctx, 'minicopy', 2)
  let b = b0
  await a.client.createVolume({ name: VOLUME, replicas: [b.peerId] })
  await waitConverged(b, 0)
  await a.client.block([b.peerId]); await b.client.block([a.peerId])
  await putFiles(a, 'big/', sz.bigCount, sz.bigSize, 2)
  await putFiles(a, 'small/', sz.smallCount, SMALL, 8, 1000)
  let t0 = now()
  await a.client.unblock(); await b.client.unblock()
  await waitConverged(b, files, { timeoutMs: 1_800_000, pollMs: 250 })
  const fullS = (now() - t0) / 1000
  const fullBytes = (await fetchedBytes(b)).bytesReceived
  ctx.log(`  full copy of ${fmtBytes(total)}: ${fmt(fullS)} s, ${fmtBytes(fullBytes)} received`)

  await b.stop()
  const joinAddr = (await a.client.status()).multiaddrs[0]
  for (let i = 0; i < sz.bigCount; i++) {
    const size = sz.bigSize
    await a.client.put(VOLUME, `big/${i}`, Readable.from(changed(i, size, (i * 37) % (size / CHUNK))), { size })
  }
  for (let i = 0; i < sz.smallChanged; i++) {
    const k = Math.floor(i * sz.smallCount / sz.smallChanged)
    await a.client.put(VOLUME, `small/${k}`, Readable.from(countedStream(500_000 + k, SMALL)), { size: SMALL })
  }
  const changedBytes = sz.bigCount * CHUNK + sz.smallChanged * SMALL
  t0 = now()
  b = await restartNode(b, joinAddr)
  const started = (now() - t0) / 1000
  await caughtUp(b, a, files)
  const miniS = (now() - t0) / 1000
  const got = await fetchedBytes(b)
  const info = await b.client.volumeInfo(VOLUME)
  const decision = Array.isArray(info.decisions) ? (info.decisions as Array<{ decision: string }>).map(d => d.decision).join(', ') : String(info.decisions)
  ctx.table({
    title: `minicopy: rejoin after ${fmtBytes(changedBytes)} changed (${fmt(100 * changedBytes / total, 2)}% of ${fmtBytes(total)})`,
    columns: ['measure', 'value', 'goal'],
    rows: [
      ['changed bytes', fmtBytes(changedBytes), '-'],
      ['chunk bytes B received on rejoin', fmtBytes(got.bytesReceived), '-'],
      ['ratio received / changed', ratio(got.bytesReceived, changedBytes), '<= 1.1x'],
      ['minicopy time, from B\'s restart (s)', fmt(miniS, 2), '-'],
      ['  of which node start-up (s)', fmt(started, 2), '-'],
      ['full copy time, same run (s)', fmt(fullS, 2), '-'],
      ['minicopy / full copy', `${fmt(100 * miniS / fullS, 1)}%`, '<= 5%'],
      ['minicopy (after start-up) / full copy', `${fmt(100 * (miniS - started) / fullS, 1)}%`, '-'],
      ['decision recorded on B', decision, 'minicopy'],
      ['peak RSS A / B (MiB)', await peakRss([a, b]), '< 200']
    ],
    notes: ['Bytes on the wire counted as chunk payload received (B\'s fetch counters); index records and framing come on top (a few KiB here).']
  })
  await a.stop(); await b.stop()
}

export const minicopy: Suite = {
  name: 'minicopy',
  description: 'rejoin after 1% change: bytes received vs changed bytes, time vs the same run\'s full copy',
  run
}
