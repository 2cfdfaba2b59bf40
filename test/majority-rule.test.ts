import '../core/polyfill.js'
import test from 'ava'
import { peerIdFromString } from '@libp2p/peer-id'
import { startNode, waitFor, httpRequest, clientOf } from './helpers.js'
import { cluster } from './replication-helpers.js'
import type { ReplicantNode } from '../node/replicant-node.js'
import type { VolumeRecord } from '../core/records.js'
import { descriptorOf, requestPrepareGeneration } from '../protocols/control-protocol.js'
import { nextGeneration } from '../replication/generations.js'
import { majorityOf, type MemberAnswer } from '../replication/quorum.js'

/** Every (generation, genId) a member has held of `volume`: its history and its current one. */
function configurations (v: VolumeRecord): Map<number, Set<string>> {
  const seen = new Map<number, Set<string>>()
  const note = (g: number, id: string): void => { seen.set(g, (seen.get(g) ?? new Set()).add(id)) }
  for (const e of v.history ?? []) note(e.generation, e.genId)
  note(v.generation, v.genId ?? '')
  return seen
}

async function allAt (nodes: ReplicantNode[], volume: string, generation: number): Promise<VolumeRecord[] | undefined> {
  const vols = await Promise.all(nodes.map(async n => await n.store.getVolume(volume)))
  return vols.every(v => v !== undefined && v.generation >= generation) ? vols as VolumeRecord[] : undefined
}

function answersOf (err: unknown): MemberAnswer[] {
  return ((err as { details?: { answers?: MemberAnswer[] } }).details?.answers) ?? []
}

test('the rule: a strict majority, the proposer counted', t => {
  t.deepEqual([1, 2, 3, 4, 5].map(majorityOf), [1, 2, 2, 3, 3])
})

test('3 members, one partitioned, changes proposed on both sides at once: the minority side fails with NO_QUORUM and every member holds one configuration of the next generation', async t => {
  const [a, b, c] = await cluster(t, 3)
  await a.createVolume({ name: 'part', replicas: [b.peerId, c.peerId] })
  await waitFor(async () => await allAt([a, b, c], 'part', 1))
  const gen = (await a.store.requireVolume('part')).generation
  await c.peers.block([a.peerId, b.peerId])
  await a.peers.block([c.peerId])
  await b.peers.block([c.peerId])
  const [major, minor] = await Promise.allSettled([a.setWriteMode('part', 'all'), c.removeReplica('part', b.peerId)])
  t.is(major.status, 'fulfilled', major.status === 'rejected' ? (major.reason as Error).message : '')
  t.is(minor.status, 'rejected', 'the side with one member of three cannot commit')
  const err = (minor as PromiseRejectedResult).reason as { code?: string, message: string }
  t.is(err.code, 'NO_QUORUM')
  t.regex(err.message, /1 of 3 members promised/)
  t.regex(err.message, /retry when more members are reachable, or use --force/i)
  const answers = answersOf(err)
  t.deepEqual(answers.filter(x => x.answer === 'promised').map(x => x.peerId), [c.peerId])
  t.deepEqual(answers.filter(x => x.answer === 'unreachable').map(x => x.peerId).sort(), [a.peerId, b.peerId].sort())
  t.is((await c.store.requireVolume('part')).generation, gen, 'nothing changed on the minority side')
  c.peers.unblock()
  a.peers.unblock()
  b.peers.unblock()
  const latest = await a.store.requireVolume('part')
  t.is(latest.generation, gen + 1)
  const vols = await waitFor(async () => {
    const vs = await allAt([a, b, c], 'part', gen + 1)
    return vs?.every(v => v.genId === latest.genId) === true ? vs : undefined
  })
  for (const v of vols) {
    t.is(v.writeMode, 'all')
    t.true(v.members.includes(b.peerId), 'the refused removal left no trace')
    for (const [g, ids] of configurations(v)) t.is(ids.size, 1, `one configuration of generation ${g}`)
  }
})

test('2 members, one stopped: remove-replica of the stopped one fails without force (NO_QUORUM, 503) and succeeds with force, with a warning', async t => {
  const a = await startNode(t)
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'pair', replicas: [b.peerId] })
  await waitFor(async () => await allAt([a, b], 'pair', 1))
  const gen = (await a.store.requireVolume('pair')).generation
  await b.stop()
  const err = await t.throwsAsync(a.removeReplica('pair', b.peerId))
  t.is((err as { code?: string }).code, 'NO_QUORUM')
  t.regex(err?.message ?? '', new RegExp(`${b.peerId}: unreachable`))
  const res = await httpRequest(a.apiUrl!, { method: 'DELETE', path: `/v1/volumes/pair/replicas/${b.peerId}` })
  t.is(res.status, 503)
  t.is(res.json().error.code, 'NO_QUORUM')
  t.is((await a.store.requireVolume('pair')).generation, gen, 'nothing changed')
  // The API's {"force": true} (the CLI's --force).
  const forced = await clientOf(a).removeReplica('pair', b.peerId, { force: true })
  t.is(forced.generation, gen + 1)
  t.deepEqual(forced.members, [a.peerId])
  t.regex(forced.warning ?? '', /without a majority/)
  t.deepEqual(forced.promises?.map(p => p.answer), [a.peerId, b.peerId].sort().map(p => p === a.peerId ? 'promised' : 'unreachable'))
  t.is(a.sync.membership.changesFor('pair').at(-1)?.what.includes('forced without a majority'), true)
})

test('5 members: a change succeeds with 2 stopped and fails (NO_QUORUM) with 3 stopped', async t => {
  const nodes = await cluster(t, 5)
  const [a, ...rest] = nodes
  await a.createVolume({ name: 'five', replicas: rest.map(n => n.peerId) })
  await waitFor(async () => await allAt(nodes, 'five', 1))
  const gen = (await a.store.requireVolume('five')).generation
  await Promise.all([rest[0].stop(), rest[1].stop()])
  const made = await a.setWriteMode('five', 'all')
  t.is(made.generation, gen + 1)
  t.is(made.warning, undefined)
  t.is(made.promises?.filter(p => p.answer === 'promised').length, 3)
  await rest[2].stop()
  const err = await t.throwsAsync(a.setWriteMode('five', 'active'))
  t.is((err as { code?: string }).code, 'NO_QUORUM')
  t.regex(err?.message ?? '', /2 of 5 members promised generation \d+, a majority is 3/)
  t.is((await a.store.requireVolume('five')).writeMode, 'all')
})

test('the grace watch bumps only with a majority: the side of a partition with one member of three does not, and says so', async t => {
  const lines: string[] = []
  const a = await startNode(t, { api: false, graceMs: 1_000 })
  const others = await Promise.all([0, 1].map(async () => await startNode(t, { api: false, graceMs: 1_000, join: [a.multiaddrs()[0]], report: l => { lines.push(l) } })))
  const all = [a, ...others]
  await a.createVolume({ name: 'grace', replicas: others.map(n => n.peerId) })
  await waitFor(async () => await allAt(all, 'grace', 1))
  const gen = (await a.store.requireVolume('grace')).generation
  // The lone node is the one with the largest id of the two joined: either way it is alone.
  const [lone, paired] = others
  await lone.peers.block([a.peerId, paired.peerId])
  await a.peers.block([lone.peerId])
  await paired.peers.block([lone.peerId])
  await waitFor(() => lines.some(l => l.includes('unreachable past the grace period, but no new generation')) ? true : undefined, 200)
  t.is((await lone.store.requireVolume('grace')).generation, gen, 'the lone member did not bump')
  // The two that see each other do (2 of 3).
  const bumped = await waitFor(async () => await allAt([a, paired], 'grace', gen + 1))
  t.is(bumped[0].genId, bumped[1].genId)
  lone.peers.unblock()
  a.peers.unblock()
  paired.peers.unblock()
  const v = await waitFor(async () => { const x = await lone.store.getVolume('grace'); return x !== undefined && x.generation >= gen + 1 ? x : undefined })
  for (const [g, ids] of configurations(v)) t.is(ids.size, 1, `one configuration of generation ${g}`)
})

test('a member restarted between a promise and the commit does not promise the same generation to another proposal', async t => {
  const [a, b, c] = await cluster(t, 3)
  await a.createVolume({ name: 'again', replicas: [b.peerId, c.peerId] })
  const [vol] = (await waitFor(async () => await allAt([a, b, c], 'again', 1)))
  const first = descriptorOf(nextGeneration(vol))
  const second = descriptorOf(nextGeneration(vol))
  await requestPrepareGeneration(a.libp2p, peerIdFromString(b.peerId), first, false, AbortSignal.timeout(10_000))
  await b.stop()
  const b2 = await startNode(t, { api: false, dataDir: b.dataDir, join: [a.multiaddrs()[0]] })
  t.is(b2.peerId, b.peerId)
  await waitFor(() => c.peers.isConnected(b2.peerId) ? true : undefined)
  const refused = await requestPrepareGeneration(c.libp2p, peerIdFromString(b2.peerId), second, false, AbortSignal.timeout(10_000))
  t.false(refused.promised)
  t.is(!refused.promised ? refused.code : undefined, 'GENERATION_CONFLICT')
  t.regex(!refused.promised ? refused.message : '', new RegExp(`proposed by ${a.peerId}`))
  // The promised proposal itself is still welcome.
  t.true((await requestPrepareGeneration(a.libp2p, peerIdFromString(b2.peerId), first, false, AbortSignal.timeout(10_000))).promised)
})
