import '../core/polyfill.js'
import test from 'ava'
import { startNode, waitFor } from './helpers.js'
import { cluster } from './replication-helpers.js'
import type { ReplicantNode } from '../node/replicant-node.js'
import type { VolumeRecord } from '../core/records.js'
import { notTakenEffect } from '../replication/membership-host.js'

/** Every (generation, genId) a member has held of `volume`: its history and its current one. */
function configurations (v: VolumeRecord): Map<number, string> {
  const seen = new Map<number, string>()
  for (const e of v.history ?? []) seen.set(e.generation, e.genId)
  seen.set(v.generation, v.genId ?? '')
  return seen
}

async function allAt (nodes: ReplicantNode[], volume: string, generation: number): Promise<VolumeRecord[] | undefined> {
  const vols = await Promise.all(nodes.map(async n => await n.store.getVolume(volume)))
  return vols.every(v => v !== undefined && v.generation >= generation) ? vols as VolumeRecord[] : undefined
}

test('two members adding different replicas at once: one change wins, the other is refused with GENERATION_CONFLICT or made at the next generation, one configuration per generation everywhere', async t => {
  const [a, b, c] = await cluster(t, 3)
  const d = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const e = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'race', replicas: [b.peerId, c.peerId] })
  await waitFor(async () => await allAt([a, b, c], 'race', 1))
  const gen = (await a.store.requireVolume('race')).generation
  const results = await Promise.allSettled([a.addReplica('race', d.peerId), b.addReplica('race', e.peerId)])
  const ok = results.filter(r => r.status === 'fulfilled')
  const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (ok.length === 2) {
    // The other outcome since in-doubt promises (CONSISTENCY.md): the later proposer found g+1
    // committed, adopted it and made its own change at g+2. Still one configuration per generation.
    const gens = results.map(r => (r as PromiseFulfilledResult<VolumeRecord>).value.generation).sort()
    t.deepEqual(gens, [gen + 1, gen + 2])
    const all = await waitFor(async () => await allAt([a, b, c], 'race', gen + 2))
    for (const v of all) t.true(v.members.includes(d.peerId) && v.members.includes(e.peerId))
    const cs = all.map(configurations)
    for (let g = 1; g <= gen + 2; g++) t.is(new Set(cs.map(m => m.get(g))).size, 1, `one configuration of generation ${g} on every member`)
    return
  }
  t.is(ok.length, 1, `exactly one change is made: ${JSON.stringify(results.map(r => r.status === 'rejected' ? (r.reason as Error).message : 'ok'))}`)
  t.is(refused.length, 1)
  t.is((refused[0].reason as { code?: string }).code, 'GENERATION_CONFLICT')
  t.regex((refused[0].reason as Error).message, /retry/)
  const winner = results[0].status === 'fulfilled' ? d : e
  const loser = winner === d ? e : d
  const vols = await waitFor(async () => await allAt([a, b, c], 'race', gen + 1))
  for (const v of vols) {
    t.is(v.generation, gen + 1)
    t.true(v.members.includes(winner.peerId))
    t.false(v.members.includes(loser.peerId), 'the refused change left no trace')
  }
  const configs = vols.map(configurations)
  for (let g = 1; g <= gen + 1; g++) t.is(new Set(configs.map(m => m.get(g))).size, 1, `one configuration of generation ${g} on every member`)
  t.is(await loser.store.getVolume('race'), undefined)
  // Retried, the refused change goes through at the next generation.
  const retried = await (winner === d ? b.addReplica('race', e.peerId) : a.addReplica('race', d.peerId))
  t.is(retried.generation, gen + 2)
  t.true(retried.members.includes(loser.peerId))
})

test('a descriptor of the generation a member holds, with another generation id, is refused', async t => {
  const [a, b] = await cluster(t, 2)
  await a.createVolume({ name: 'cas', replicas: [b.peerId] })
  await waitFor(async () => await allAt([a, b], 'cas', 1))
  const vol = await b.store.requireVolume('cas')
  const forged = { ...vol, genId: 'f'.repeat(16), writeMode: 'all' as const }
  const err = await t.throwsAsync(a.sync.membership.announce(forged).then(r => {
    const refusal = r.find(x => x.peerId === b.peerId && x.status === 'refused')
    if (refusal !== undefined) throw Object.assign(new Error(refusal.error), { code: 'REFUSED' })
  }))
  t.regex(err?.message ?? '', /GENERATION_CONFLICT|one configuration per generation/)
  t.is((await b.store.requireVolume('cas')).genId, vol.genId, 'b kept its configuration')
})

test('a partitioned member that missed two changes rejoins and adopts the latest', async t => {
  const [a, b, c] = await cluster(t, 3)
  const d = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'away', replicas: [b.peerId, c.peerId] })
  await waitFor(async () => await allAt([a, b, c], 'away', 1))
  const gen = (await a.store.requireVolume('away')).generation
  await c.peers.block([a.peerId, b.peerId])
  await a.peers.block([c.peerId])
  await b.peers.block([c.peerId])
  await a.addReplica('away', d.peerId)
  await a.setWriteMode('away', 'all')
  t.is((await c.store.requireVolume('away')).generation, gen, 'c missed both changes')
  c.peers.unblock()
  a.peers.unblock()
  b.peers.unblock()
  const latest = await a.store.requireVolume('away')
  const rec = await waitFor(async () => {
    const v = await c.store.getVolume('away')
    return v !== undefined && v.generation === latest.generation ? v : undefined
  })
  t.is(rec.genId, latest.genId)
  t.deepEqual(rec.members, latest.members)
  t.is(rec.writeMode, 'all')
})

test('a change every reachable other member refused did not take effect: named with the reason; pending members do not count', t => {
  t.is(notTakenEffect([{ peerId: 'p1', status: 'exists' }, { peerId: 'p2', status: 'refused', error: 'no' }]), undefined)
  t.is(notTakenEffect([{ peerId: 'p1', status: 'pending' }]), undefined)
  t.is(notTakenEffect([{ peerId: 'p1', status: 'pending' }, { peerId: 'p2', status: 'refused', error: 'not a member' }]), 'p2 refused: not a member')
})
