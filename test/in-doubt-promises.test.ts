import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { peerIdFromString } from '@libp2p/peer-id'
import { startNode, waitFor, sleep } from './helpers.js'
import type { ReplicantNode } from '../node/replicant-node.js'
import type { VolumeRecord } from '../core/records.js'
import { descriptorOf, requestPrepareGeneration } from '../protocols/control-protocol.js'
import { nextGeneration } from '../replication/generations.js'

// Promises live this long here (30 s in production): the tests wait for them to be in doubt.
const PROMISE_MS = 5_000

/** Three nodes that keep promises PROMISE_MS, the last two joined to the first. */
async function trio (t: ExecutionContext): Promise<ReplicantNode[]> {
  const a = await startNode(t, { api: false, promiseMs: PROMISE_MS })
  const rest = await Promise.all([0, 1].map(async () => await startNode(t, { api: false, promiseMs: PROMISE_MS, join: [a.multiaddrs()[0]] })))
  return [a, ...rest]
}

async function allAt (nodes: ReplicantNode[], volume: string, generation: number): Promise<VolumeRecord[] | undefined> {
  const vols = await Promise.all(nodes.map(async n => await n.store.getVolume(volume)))
  return vols.every(v => v !== undefined && v.generation >= generation) ? vols as VolumeRecord[] : undefined
}

/**
 * allAt, once every pair of `nodes` is connected too. b and c joined a only and meet through
 * the volume; the tests then stop or cut a, so b and c must have met before (a CI run on a
 * loaded machine stopped a before they had: b's change then found c unreachable, NO_QUORUM).
 */
async function meshedAt (nodes: ReplicantNode[], volume: string, generation: number): Promise<VolumeRecord[] | undefined> {
  if (!nodes.every(n => nodes.every(m => m === n || n.peers.isConnected(m.peerId)))) return undefined
  return await allAt(nodes, volume, generation)
}

/** `fn`'s first defined value within `ms`, or undefined. */
async function within<V> (ms: number, fn: () => Promise<V | undefined>): Promise<V | undefined> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    const v = await fn()
    if (v !== undefined) return v
    await sleep(100)
  }
  return undefined
}

/** Every id each generation of `volume` has on any of `nodes` (history and current). */
async function idsPerGeneration (nodes: ReplicantNode[], volume: string): Promise<Map<number, Set<string>>> {
  const seen = new Map<number, Set<string>>()
  const note = (g: number, id: string): void => { seen.set(g, (seen.get(g) ?? new Set()).add(id)) }
  for (const n of nodes) {
    const v = await n.store.requireVolume(volume)
    for (const e of v.history ?? []) note(e.generation, e.genId)
    note(v.generation, v.genId ?? '')
  }
  return seen
}

/** Waits (bounded) until every node holds the same configuration, then checks one id per generation across all of them. */
async function oneConfigurationPerGeneration (t: ExecutionContext, nodes: ReplicantNode[], volume: string): Promise<VolumeRecord[]> {
  const agreed = await within(20_000, async () => {
    const vs = await Promise.all(nodes.map(async n => await n.store.requireVolume(volume)))
    return vs.every(v => v.generation === vs[0].generation && v.genId === vs[0].genId) ? vs : undefined
  })
  for (const [g, ids] of await idsPerGeneration(nodes, volume)) t.is(ids.size, 1, `generation ${g} has one configuration on every member, not ${[...ids].join(', ')}`)
  t.not(agreed, undefined, 'every member holds the same latest configuration after the heal')
  return agreed ?? []
}

test('a proposer cut off between its commit and its announce: the promises outlive their 30 s as in doubt, and the majority without it completes that change before its own; one configuration per generation after the heal', async t => {
  const [a, b, c] = await trio(t)
  await a.createVolume({ name: 'cut', replicas: [b.peerId, c.peerId] })
  const [start] = await waitFor(async () => await meshedAt([a, b, c], 'cut', 1))
  const g = start.generation
  // a commits g+1 (write mode all) with the promises of all three, then is cut off: its announce reaches nobody.
  a.faults.cutAfterCommit = true
  const made = await a.setWriteMode('cut', 'all')
  t.is(made.generation, g + 1)
  t.true(made.announce.every(r => r.status === 'pending'), 'the announce reached no member')
  t.is((await b.store.requireVolume('cut')).generation, g)
  t.is((await c.store.requireVolume('cut')).generation, g)
  // Past the promises' life, b and c (a majority of three) remove the member they cannot reach.
  await sleep(PROMISE_MS + 500)
  const removed = await b.removeReplica('cut', a.peerId)
  t.deepEqual(removed.members, [b.peerId, c.peerId].sort())
  a.peers.unblock()
  const vols = await oneConfigurationPerGeneration(t, [a, b, c], 'cut')
  // Nothing was lost: a's committed change is kept, and b's change came after it.
  t.is(removed.generation, g + 2, 'the removal was made at g+2, after completing a\'s g+1')
  for (const v of vols) t.is(v.writeMode, 'all')
  t.is(vols[0].history?.find(e => e.generation === g + 1)?.genId, made.genId)
  t.is((await a.store.requireVolume('cut')).state, 'removed')
})

/** `from` (a member) asks `to` to promise `next`, as a proposer does; the test plays a proposer that then dies. */
async function promise (from: ReplicantNode, to: ReplicantNode, next: VolumeRecord): Promise<boolean> {
  return (await requestPrepareGeneration(from.libp2p, peerIdFromString(to.peerId), descriptorOf(next), false, AbortSignal.timeout(10_000), 'dead-proposer')).promised
}

test('a proposer that died after taking its promises: status shows them in doubt, the next change completes that one first (g+1, its own id) and is made at g+2', async t => {
  const [a, b, c] = await trio(t)
  await a.createVolume({ name: 'died', replicas: [b.peerId, c.peerId] })
  const [vol] = await waitFor(async () => await meshedAt([a, b, c], 'died', 1))
  const g = vol.generation
  const abandoned: VolumeRecord = { ...nextGeneration(vol), writeMode: 'all' }
  t.true(await promise(a, b, abandoned))
  t.true(await promise(a, c, abandoned))
  t.is((await b.volumeInfo('died')).generationPromise?.state, 'live')
  await a.stop()
  await sleep(PROMISE_MS + 500)
  const held = (await b.volumeInfo('died')).generationPromise
  t.is(held?.state, 'in-doubt', 'past its life the promise is kept, in doubt')
  t.is(held?.genId, abandoned.genId)
  t.deepEqual(held?.members, abandoned.members)
  const removed = await b.removeReplica('died', a.peerId)
  t.is(removed.generation, g + 2)
  t.deepEqual(removed.completed?.map(x => [x.how, x.generation, x.genId, x.from]), [['completed', g + 1, abandoned.genId, a.peerId]])
  const vols = await waitFor(async () => {
    const vs = await allAt([b, c], 'died', g + 2)
    return vs?.every(v => v.genId === removed.genId) === true ? vs : undefined
  })
  for (const v of vols) {
    t.deepEqual(v.members, [b.peerId, c.peerId].sort())
    t.is(v.writeMode, 'all', 'the completed change is in the configuration')
    t.is(v.history?.find(e => e.generation === g + 1)?.genId, abandoned.genId)
  }
  for (const n of [b, c]) t.is((await n.volumeInfo('died')).generationPromise, null, 'no promise left')
})

test('two different changes in doubt among a majority: the change is refused with GENERATION_IN_DOUBT naming who holds which, nothing changed; --force makes it over them', async t => {
  const [a, b, c] = await trio(t)
  await a.createVolume({ name: 'two', replicas: [b.peerId, c.peerId] })
  const [vol] = await waitFor(async () => await meshedAt([a, b, c], 'two', 1))
  const g = vol.generation
  const one: VolumeRecord = { ...nextGeneration(vol), writeMode: 'all' }
  const other: VolumeRecord = nextGeneration(vol)
  t.true(await promise(a, b, one))
  t.true(await promise(a, c, other))
  await a.stop()
  await sleep(PROMISE_MS + 500)
  const err = await t.throwsAsync(b.removeReplica('two', a.peerId))
  t.is((err as { code?: string }).code, 'GENERATION_IN_DOUBT', err?.message)
  t.regex(err?.message ?? '', new RegExp(`${b.peerId} \\(this node\\) holds id ${one.genId}`))
  t.regex(err?.message ?? '', new RegExp(`${c.peerId} holds id ${other.genId}`))
  t.regex(err?.message ?? '', /nothing changed.*--force/)
  for (const n of [b, c]) {
    t.is((await n.store.requireVolume('two')).generation, g, 'nothing changed')
    t.is((await n.volumeInfo('two')).generationPromise?.state, 'in-doubt', 'the promises are kept')
  }
  const forced = await b.removeReplica('two', a.peerId, { force: true })
  t.is(forced.generation, g + 1)
  t.regex(forced.warning ?? '', /over changes in doubt/)
  const v = await waitFor(async () => { const x = await c.store.requireVolume('two'); return x.genId === forced.genId ? x : undefined })
  t.deepEqual(v.members, [b.peerId, c.peerId].sort())
  for (const n of [b, c]) t.is((await n.volumeInfo('two')).generationPromise, null, 'the committed generation settled both promises')
})

test('a proposal its proposer no longer runs (it restarted mid-change): the members holding its promise in doubt ask it, hear "abandoned", and let go; the next change is made at g+1', async t => {
  const [a, b, c] = await trio(t)
  await a.createVolume({ name: 'gone', replicas: [b.peerId, c.peerId] })
  const [vol] = await waitFor(async () => await meshedAt([a, b, c], 'gone', 1))
  const g = vol.generation
  // Promises for an attempt a does not run (as after a restart in the middle of a change).
  const abandoned: VolumeRecord = { ...nextGeneration(vol), writeMode: 'all' }
  t.true(await promise(a, b, abandoned))
  t.true(await promise(a, c, abandoned))
  const freed = await within(PROMISE_MS * 3, async () => {
    const ps = await Promise.all([b, c].map(async n => (await n.volumeInfo('gone')).generationPromise))
    return ps.every(p => p === null) ? true : undefined
  })
  t.true(freed, 'b and c released the abandoned promise')
  const made = await b.setWriteMode('gone', 'all')
  t.is(made.generation, g + 1, 'nothing to complete: the change is made at g+1')
  t.is(made.completed, undefined)
  t.not(made.genId, abandoned.genId)
})
