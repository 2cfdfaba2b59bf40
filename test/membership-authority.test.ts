import '../core/polyfill.js'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from '@libp2p/interface'
import { createReplicantLibp2p } from '../node/libp2p.js'
import { fetchIndexPage } from '../protocols/index-protocol.js'
import { requestEnsureVolume, descriptorOf } from '../protocols/control-protocol.js'
import { startNode, waitFor } from './helpers.js'
import { cluster, bytes } from './replication-helpers.js'

/** A stock libp2p peer that no operator added to anything, speaking the protocols by hand. */
async function stranger (t: ExecutionContext): Promise<Libp2p> {
  const node = await createReplicantLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  t.teardown(async () => { await node.stop() })
  return node
}

/** waitFor with a deadline, so a change that never takes effect fails the test instead of hanging it. */
async function within<V> (ms: number, fn: () => Promise<V | undefined>): Promise<V | undefined> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const v = await fn()
    if (v !== undefined) return v
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return undefined
}

async function failure (p: Promise<unknown>): Promise<{ code?: string, message: string } | undefined> {
  try { await p } catch (err) { return { code: (err as { code?: string }).code, message: (err as Error).message } }
  return undefined
}

test('a stranger that lists itself in a descriptor is refused, adopts nothing, learns no volume id, and the refusal is reported', async t => {
  const reports: string[] = []
  const a = await startNode(t, { api: false, report: (line) => { reports.push(line) } })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const vol = await a.createVolume({ name: 'private', replicas: [b.peerId] })
  await waitFor(async () => await b.store.getVolume('private'))
  const before = await a.store.requireVolume('private')

  const intruder = await stranger(t)
  const me = intruder.peerId.toString()
  await intruder.dial(multiaddr(a.multiaddrs()[0]))
  const target = peerIdFromString(a.peerId)
  const forged = { ...descriptorOf(before), members: [...before.members, me].sort() }

  const wrongId = await failure(requestEnsureVolume(intruder, target, { ...forged, id: '0'.repeat(32), generation: 1000 }))
  t.truthy(wrongId, 'a wrong id is refused')
  t.false(wrongId!.message.includes(vol.id), 'the refusal does not leak the real volume id')

  const rightId = await failure(requestEnsureVolume(intruder, target, { ...forged, generation: 1000 }))
  t.truthy(rightId, 'the right id with a high generation is refused too')
  t.false(rightId!.message.includes(vol.id))

  const after = await a.store.requireVolume('private')
  t.is(after.generation, before.generation, 'nothing adopted')
  t.deepEqual(after.members, before.members)
  t.is((await failure(fetchIndexPage(intruder, target, { volume: 'private', volumeId: vol.id, since: 0 })))?.code, 'NOT_A_MEMBER')
  // Nor can it create a volume of its own here (a joins nobody: the stranger is not known).
  const created = await failure(requestEnsureVolume(intruder, target, { ...forged, name: 'takeover', id: 'a'.repeat(32), members: [a.peerId, me].sort() }))
  t.is(created?.code, 'VOLUME_REFUSED')
  t.is(await a.store.getVolume('takeover'), undefined, 'nothing created')
  t.true(reports.some(l => l.includes(me) && l.includes('private')), `the refusal is reported, naming the proposer: ${JSON.stringify(reports)}`)
})

test('--discard-local does not delete a replica on a stranger\'s descriptor', async t => {
  const a = await startNode(t, { api: false, discardLocal: true })
  await a.createVolume({ name: 'keep' })
  await a.volumes.putFile('keep', '/f', bytes(new TextEncoder().encode('precious')))
  const before = await a.store.requireVolume('keep')
  const intruder = await stranger(t)
  await intruder.dial(multiaddr(a.multiaddrs()[0]))
  const forged = { ...descriptorOf(before), id: 'f'.repeat(32), members: [a.peerId, intruder.peerId.toString()].sort(), generation: 1000 }
  t.truthy(await failure(requestEnsureVolume(intruder, peerIdFromString(a.peerId), forged)))
  const after = await a.store.requireVolume('keep')
  t.is(after.id, before.id, 'the replica was not replaced')
  t.truthy(await a.store.getFile('keep', '/f'))
})

test('a member can remove itself: the others adopt the new generation without it', async t => {
  const [a, b, c] = await cluster(t, 3)
  await a.createVolume({ name: 'v', replicas: [b.peerId, c.peerId] })
  await waitFor(async () => (await b.store.getVolume('v')) !== undefined && (await c.store.getVolume('v')) !== undefined ? true : undefined)
  const gen = (await a.store.requireVolume('v')).generation
  const result = await a.removeReplica('v', a.peerId)
  t.true(Array.isArray(result.announce))
  for (const n of [b, c]) {
    const rec = await within(10_000, async () => {
      const v = await n.store.getVolume('v')
      return v !== undefined && v.generation > gen ? v : undefined
    })
    if (rec === undefined) { t.fail(`${n.peerId} never adopted the generation without the remover`); continue }
    t.false(rec.members.includes(a.peerId), 'the remover is no longer a member')
    t.deepEqual(rec.members, [b.peerId, c.peerId].sort())
  }
  t.is((await a.store.requireVolume('v')).state, 'removed')
  // The remover stops serving the volume.
  t.is((await failure(a.volumes.stat('v', '/anything')))?.code, 'VOLUME_REMOVED')
})
