import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { peerIdFromString } from '@libp2p/peer-id'
import { startNode, waitFor, httpRequest, sha256Hex } from './helpers.js'
import { bytes } from './replication-helpers.js'
import { requestEnsureVolume, requestPrepareGeneration, descriptorOf } from '../protocols/control-protocol.js'
import { sendPrepare } from '../protocols/write-protocol.js'
import { sendNotice } from '../protocols/notify-protocol.js'
import { wantChunks } from '../protocols/chunk-protocol.js'
import { fetchIndexPage } from '../protocols/index-protocol.js'
import { chunkHashes, withReaders, RECORD_VERSION } from '../core/records.js'
import { nextGeneration } from '../replication/generations.js'
import type { ReplicantNode } from '../node/replicant-node.js'

const MiB = 1024 * 1024

async function codeOf (p: Promise<unknown>): Promise<string | undefined> {
  try { await p; return undefined } catch (err) { return (err as { code?: string }).code ?? (err as Error).message }
}

/** A volume with `size` random bytes at /big.bin on `a`, and `r` granted read; resolves once `r` holds the index. */
async function granted (a: ReplicantNode, r: ReplicantNode, size: number, replicas: string[] = []): Promise<Buffer> {
  await a.createVolume({ name: 'docs', replicas })
  const data = randomBytes(size)
  await a.volumes.putFile('docs', '/big.bin', bytes(data))
  const g = await a.grantReader('docs', r.peerId)
  if (!(g.announce.some(x => x.peerId === r.peerId && x.status === 'created'))) throw new Error(`reader not told: ${JSON.stringify(g.announce)}`)
  await waitFor(async () => await r.volumes.stat('docs', '/big.bin').then(() => true, () => undefined))
  return data
}

test('a reader reads a file it does not hold (whole and a range) and every write it tries is refused', async t => {
  t.timeout(120_000)
  const a = await startNode(t)
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  // copyConcurrency 0: a lazy replica, so the reads below must fetch on demand.
  const r = await startNode(t, { join: [a.multiaddrs()[0]], copyConcurrency: 0, readTimeoutMs: 60_000 })
  await waitFor(() => a.peers.isConnected(b.peerId) ? true : undefined)
  const data = await granted(a, r, 3 * MiB + 17, [b.peerId])
  const rec = await r.volumes.stat('docs', '/big.bin')
  t.false((await r.store.chunks.hasMany([...chunkHashes(rec)])).some(Boolean), 'the reader holds none of the chunks yet')
  const info = await r.volumeInfo('docs')
  t.is(info.access, 'reader')
  t.deepEqual(info.members, [a.peerId, b.peerId].sort())

  const whole = await httpRequest(r.apiUrl!, { path: '/v1/volumes/docs/files/big.bin' })
  t.is(whole.status, 200)
  t.is(sha256Hex(whole.body), sha256Hex(data))
  const part = await httpRequest(r.apiUrl!, { path: '/v1/volumes/docs/files/big.bin', headers: { range: 'bytes=1000000-2100000' } })
  t.is(part.status, 206)
  t.true(part.body.equals(data.subarray(1_000_000, 2_100_001)))

  // Its own API refuses writes to a volume it only reads.
  const put = await httpRequest(r.apiUrl!, { method: 'PUT', path: '/v1/volumes/docs/files/new.txt', body: 'hello' })
  t.is(put.status, 403)
  t.is(put.json().error.code, 'READ_ONLY')
  const del = await httpRequest(r.apiUrl!, { method: 'DELETE', path: '/v1/volumes/docs/files/big.bin' })
  t.is(del.status, 403)

  // Writes crafted from the reader to a member, through every protocol that changes something.
  const vol = await a.store.requireVolume('docs')
  const aId = peerIdFromString(a.peerId)
  const record = { v: RECORD_VERSION, path: '/evil', size: 0, mode: 0o644, mtime: 1, chunkSize: vol.chunkSize, chunks: new Uint8Array(0), vv: { [r.peerId]: 1 }, deleted: false }
  t.is(await codeOf(sendPrepare(r.libp2p, aId, { volume: 'docs', volumeId: vol.id, txId: 'ab'.repeat(16) }, record, AbortSignal.timeout(10_000))), 'NOT_A_MEMBER')
  // A takeover: the next generation with the reader as its only member.
  const takeover = descriptorOf(withReaders(nextGeneration(vol, [r.peerId]), []))
  t.is(await codeOf(requestEnsureVolume(r.libp2p, aId, takeover, AbortSignal.timeout(10_000))), 'NOT_A_MEMBER')
  t.is(await codeOf(requestPrepareGeneration(r.libp2p, aId, takeover, false, AbortSignal.timeout(10_000))), 'NOT_A_MEMBER')
  // A notice has no reply: it is ignored (a member pulls only from members).
  await sendNotice(r.libp2p, aId, { volume: 'docs', volumeId: vol.id, seq: 999, state: 'steady', generation: vol.generation })
  const after = await a.store.requireVolume('docs')
  t.is(after.generation, vol.generation)
  t.deepEqual(after.members, vol.members)
  await t.throwsAsync(a.volumes.stat('docs', '/evil'))

  // Grants are seen on every member, also after that member restarts.
  t.deepEqual((await waitFor(async () => { const v = await b.store.requireVolume('docs'); return v.readers !== undefined ? v : undefined })).readers, [r.peerId])
  const bDir = b.dataDir
  await b.stop()
  const b2 = await startNode(t, { api: false, dataDir: bDir, join: [a.multiaddrs()[0]] })
  t.deepEqual((await b2.volumeInfo('docs')).readers, [r.peerId])
  t.deepEqual((await a.volumeInfo('docs')).readers, [r.peerId])
})

test('a reader is not counted in an all-mode write: with the reader stopped the write still commits', async t => {
  t.timeout(120_000)
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const r = await startNode(t, { api: false, join: [a.multiaddrs()[0]], copyConcurrency: 0 })
  await waitFor(() => a.peers.isConnected(b.peerId) ? true : undefined)
  await granted(a, r, 100_000, [b.peerId])
  await a.setWriteMode('docs', 'all')
  await waitFor(async () => (await r.store.requireVolume('docs')).writeMode === 'all' ? true : undefined)
  await r.stop()
  const rec = await a.volumes.putFile('docs', '/after.txt', bytes(Buffer.from('committed without the reader')))
  t.is(rec.size, 28)
  t.is((await b.volumes.stat('docs', '/after.txt')).size, 28, 'the other member took part')
  // Nor does it hold back log compaction: the safe point waits for b only.
  await a.volumes.removeFile('docs', '/after.txt')
  const seq = (await a.store.requireVolume('docs')).seq
  t.true(((await a.store.listApplied('docs'))[r.peerId] ?? 0) < seq, 'the stopped reader has not applied the latest changes')
  const compacted = await waitFor(async () => { const c = await a.compactLog('docs'); return c.safeUpto >= seq ? c : undefined }, 200)
  t.true(compacted.purged >= 1)
  // Nor does the stopped reader count for generations: a grant change goes on without it.
  const g = await a.revokeReader('docs', r.peerId)
  t.deepEqual(g.readers, undefined)
  t.deepEqual(g.members, [a.peerId, b.peerId].sort())
})

test('a revocation closes the reader\'s streams at once and later requests are refused', async t => {
  t.timeout(180_000)
  const a = await startNode(t)
  const r = await startNode(t, { join: [a.multiaddrs()[0]], copyConcurrency: 0, readTimeoutMs: 60_000 })
  await granted(a, r, 32 * MiB)
  const vol = await a.store.requireVolume('docs')
  const rec = await a.volumes.stat('docs', '/big.bin')
  const hashes = [...chunkHashes(rec)]
  // A slow link (512 KiB/s of replies to the reader): one want-list of 64 chunks (4 MiB) takes ~8 s.
  a.links.set([r.peerId], { bytesPerSecond: 512 * 1024 })
  const stream = wantChunks(r.libp2p, peerIdFromString(a.peerId), { volume: 'docs', volumeId: vol.id, hashes: hashes.slice(0, 64) }, vol.chunkSize)
  let got = 0
  const first = await stream.next()
  t.false(first.done)
  got++
  t.true(a.sync.readerStreams.size >= 1, 'the member tracks the reader\'s open stream')
  // And an HTTP read of the whole file on the reader, under way at the same time.
  let httpBytes = 0
  const httpDone = new Promise<string>((resolve) => {
    const req = http.get(`${r.apiUrl!}/v1/volumes/docs/files/big.bin`, { headers: { authorization: `Bearer ${r.apiToken}` } }, res => {
      res.on('data', (c: Buffer) => { httpBytes += c.byteLength })
      res.on('end', () => { resolve(res.complete ? 'complete' : 'aborted') })
      res.on('error', () => { resolve('error') })
      res.on('aborted', () => { resolve('aborted') })
    })
    req.on('error', () => { resolve('error') })
  })
  await waitFor(() => httpBytes > 0 ? true : undefined)
  const revokedAt = Date.now()
  await a.revokeReader('docs', r.peerId)
  t.is(a.sync.readerStreams.size, 0, 'no stream of the revoked reader stays open')
  const err = await (async () => { try { for (;;) { const n = await stream.next(); if (n.done === true) return undefined; got++ } } catch (e) { return e as Error } })()
  const lostAfterMs = Date.now() - revokedAt
  t.truthy(err, 'the want-list stream was reset')
  t.true(got < 64, `the stream ended before its 64 chunks (${got})`)
  t.true(lostAfterMs < 3_000, `lost ${lostAfterMs} ms after the revocation`)
  t.not(await httpDone, 'complete')
  const httpCutAfterMs = Date.now() - revokedAt
  t.true(httpBytes < 32 * MiB)
  t.true(httpCutAfterMs < 5_000, `HTTP read cut ${httpCutAfterMs} ms after the revocation`)
  t.log(`want-list lost after ${lostAfterMs} ms with ${got}/64 chunks; HTTP read cut at ${httpBytes} bytes, ${httpCutAfterMs} ms after the revocation`)
  a.links.clear()

  // Later requests from the reader are refused with the code; the reader itself stops serving the volume.
  t.is(await codeOf(fetchIndexPage(r.libp2p, peerIdFromString(a.peerId), { volume: 'docs', volumeId: vol.id, since: 0 })), 'NOT_A_MEMBER')
  t.is(await codeOf(wantChunks(r.libp2p, peerIdFromString(a.peerId), { volume: 'docs', volumeId: vol.id, hashes: hashes.slice(0, 1) }, vol.chunkSize).next()), 'NOT_A_MEMBER')
  await waitFor(async () => (await r.store.requireVolume('docs')).state === 'removed' ? true : undefined)
  const later = await httpRequest(r.apiUrl!, { path: '/v1/volumes/docs/files/big.bin' })
  t.is(later.json().error.code, 'VOLUME_REMOVED')
  t.is((await r.volumeInfo('docs')).access, 'none')
})

test('grant and revoke: bad input gets a typed error', async t => {
  const a = await startNode(t)
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'docs' })
  const post = async (body: unknown): Promise<{ status: number, code: string | undefined }> => {
    const res = await httpRequest(a.apiUrl!, { method: 'POST', path: '/v1/volumes/docs/grants', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    return { status: res.status, code: res.json().error?.code }
  }
  t.deepEqual(await post({ peer: 'nope' }), { status: 400, code: 'BAD_REQUEST' })
  t.deepEqual(await post({ peer: b.peerId, access: 'write' }), { status: 400, code: 'BAD_REQUEST' })
  t.deepEqual(await post({ peer: a.peerId }), { status: 409, code: 'ALREADY_MEMBER' })
  const ok = await httpRequest(a.apiUrl!, { method: 'POST', path: '/v1/volumes/docs/grants', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ peer: b.peerId, access: 'read' }) })
  t.is(ok.status, 200)
  t.deepEqual(ok.json().readers, [b.peerId])
  const gen = ok.json().generation
  t.is((await a.grantReader('docs', b.peerId)).generation, gen, 'granting again changes nothing')
  const del = await httpRequest(a.apiUrl!, { method: 'DELETE', path: `/v1/volumes/docs/grants/${b.peerId}` })
  t.is(del.status, 200)
  const again = await httpRequest(a.apiUrl!, { method: 'DELETE', path: `/v1/volumes/docs/grants/${b.peerId}` })
  t.is(again.status, 404)
  t.is(again.json().error.code, 'NOT_A_READER')
})

test('a reader revoked while it was away learns it when it next meets a member', async t => {
  t.timeout(120_000)
  const a = await startNode(t, { api: false })
  const r = await startNode(t, { api: false, join: [a.multiaddrs()[0]], copyConcurrency: 0 })
  await granted(a, r, 100_000)
  // It has read from a (an applied mark): a knows it once read the volume.
  await waitFor(async () => (await a.store.listApplied('docs'))[r.peerId] !== undefined ? true : undefined)
  const rDir = r.dataDir
  await r.stop()
  await a.revokeReader('docs', r.peerId)
  const r2 = await startNode(t, { api: false, dataDir: rDir, join: [a.multiaddrs()[0]], copyConcurrency: 0 })
  await waitFor(async () => (await r2.store.requireVolume('docs')).state === 'removed' ? true : undefined)
  t.is((await r2.volumeInfo('docs')).access, 'none')
  await t.throwsAsync(r2.volumes.stat('docs', '/big.bin'), { message: /removed/ })
})

test('a reader added as a member leaves the reader list and may write', async t => {
  t.timeout(120_000)
  const a = await startNode(t, { api: false })
  const r = await startNode(t, { api: false, join: [a.multiaddrs()[0]], copyConcurrency: 0 })
  await granted(a, r, 100_000)
  await t.throwsAsync(r.volumes.putFile('docs', '/mine', bytes(Buffer.from('x'))), { code: 'READ_ONLY' } as never)
  const added = await a.addReplica('docs', r.peerId)
  t.is(added.readers, undefined)
  t.deepEqual(added.members, [a.peerId, r.peerId].sort())
  await waitFor(async () => (await r.store.requireVolume('docs')).members.includes(r.peerId) ? true : undefined)
  t.is((await r.volumeInfo('docs')).access, 'member')
  t.deepEqual((await r.volumeInfo('docs')).readers, [])
  await r.volumes.putFile('docs', '/mine', bytes(Buffer.from('x')))
  await waitFor(async () => await a.volumes.stat('docs', '/mine').then(() => true, () => undefined))
  t.pass()
})
