/**
 * A peer judged a stranger by the request limits, then added as a member, gets the member's
 * allowance at once. Found by the wannabe test under load: the newcomer connects (and asks)
 * before it is added, is found not to matter, and for the next trust window its on-demand
 * reads were refused THROTTLED at the stranger rate, cutting an HTTP read mid-answer.
 */
import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { startNode, waitFor } from './helpers.js'
import { bytes } from './replication-helpers.js'
import { fetchIndexPage } from '../protocols/index-protocol.js'
import { wantChunks } from '../protocols/chunk-protocol.js'
import { chunkHashes } from '../core/records.js'
import { PeerLimits } from '../replication/peer-limits.js'
import { setTimeout as sleep } from 'node:timers/promises'

async function codeOf (p: Promise<unknown>): Promise<string | undefined> {
  try { await p; return undefined } catch (err) { return (err as { code?: string }).code ?? (err as Error).message }
}

test('a stranger found not to matter and then added as a member is not throttled at the stranger rate', async t => {
  t.timeout(120_000)
  // A wide trust window (a minute), so that without the fix the newcomer is still judged a stranger below.
  const a = await startNode(t, { api: false, limits: { stranger: { rate: 1, burst: 5 }, trustTtlMs: 60_000 } })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const vol = await a.createVolume({ name: 'v' })
  const rec = await a.volumes.putFile('v', '/f.bin', bytes(randomBytes(256 * 1024)))
  await waitFor(() => a.peers.isConnected(b.peerId) ? true : undefined)
  const aId = peerIdFromString(a.peerId)

  // As a stranger, b empties its small bucket: the limits ask whether it matters (no) and throttle it.
  const codes: Array<string | undefined> = []
  for (let i = 0; i < 8; i++) codes.push(await codeOf(fetchIndexPage(b.libp2p, aId, { volume: 'v', volumeId: vol.id, since: 0 })))
  t.true(codes.includes('THROTTLED'), `the stranger was throttled: ${codes.join(', ')}`)

  await a.addReplica('v', b.peerId)
  // Now a member: many requests in a row, well inside the trust window, all answered.
  for (let i = 0; i < 20; i++) {
    t.is(await codeOf(fetchIndexPage(b.libp2p, aId, { volume: 'v', volumeId: vol.id, since: 0 })), undefined, `index request ${i}`)
  }
  const hashes = [...chunkHashes(rec)]
  for (let i = 0; i < 10; i++) {
    const got: unknown[] = []
    for await (const c of wantChunks(b.libp2p, aId, { volume: 'v', volumeId: vol.id, hashes }, vol.chunkSize)) got.push(c)
    t.is(got.length, hashes.length, `want-list ${i}`)
  }
  t.false(a.limits.throttled().some(p => p.peer === b.peerId && p.banned), 'the new member is not banned')
})

test('a granted reader gets the member allowance, not the stranger rate', async t => {
  t.timeout(120_000)
  const a = await startNode(t, { api: false, limits: { stranger: { rate: 1, burst: 5 } } })
  const r = await startNode(t, { api: false, join: [a.multiaddrs()[0]], copyConcurrency: 0 })
  const vol = await a.createVolume({ name: 'v' })
  await waitFor(() => a.peers.isConnected(r.peerId) ? true : undefined)
  await a.grantReader('v', r.peerId)
  const aId = peerIdFromString(a.peerId)
  for (let i = 0; i < 30; i++) {
    t.is(await codeOf(fetchIndexPage(r.libp2p, aId, { volume: 'v', volumeId: vol.id, since: 0 })), undefined, `index request ${i}`)
  }
})

test('requests of a member that arrive while its trust is being checked wait for the check instead of being refused', async t => {
  // Parallel want-lists (a copy, on-demand reads) empty the stranger bucket together; the first
  // one past it starts the check, and before the fix the others, arriving during it, got THROTTLED.
  const l = new PeerLimits({ stranger: { rate: 1, burst: 3 }, member: { rate: 1000, burst: 100 } })
  l.attach({ matters: async p => { await sleep(50); return p === 'member' }, disconnect: async () => { await Promise.resolve() } })
  const results = await Promise.allSettled(Array.from({ length: 40 }, async () => { await l.admit('member', 'x') }))
  t.deepEqual(results.filter(r => r.status === 'rejected').map(r => String(r.reason)), [])
  // A stranger's parallel requests past its bucket are still refused (after the one check).
  const s = await Promise.allSettled(Array.from({ length: 10 }, async () => { await l.admit('stranger', 'x') }))
  t.is(s.filter(r => r.status === 'rejected').length, 7)
})
