import '../core/polyfill.js'
import test from 'ava'
import { peerIdFromString } from '@libp2p/peer-id'
import { requestEnsureVolume, descriptorOf } from '../protocols/control-protocol.js'
import { startNode, waitFor } from './helpers.js'

// Found by hand (issue 12 check): two members adding different replicas at once; the loser
// re-made its change at the next generation and announced it to the newcomer while another
// member was telling it the same configuration. The newcomer's two creates raced and one
// member was answered "refused (volume already exists)" for a volume the newcomer now held.
test('two members telling a newcomer of the same new configuration at once are both answered, neither refused', async t => {
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const c = await startNode(t, { api: false, join: [a.multiaddrs()[0], b.multiaddrs()[0]] })
  await a.createVolume({ name: 'race', replicas: [b.peerId] })
  const held = await waitFor(async () => await b.store.getVolume('race'))
  await waitFor(() => a.libp2p.getConnections(peerIdFromString(c.peerId)).length > 0 && b.libp2p.getConnections(peerIdFromString(c.peerId)).length > 0 ? true : undefined)
  const next = { ...descriptorOf(held), generation: held.generation + 1, members: [...held.members, c.peerId].sort() }
  const target = peerIdFromString(c.peerId)
  const answers = await Promise.allSettled([
    requestEnsureVolume(a.libp2p, target, next, AbortSignal.timeout(10_000)),
    requestEnsureVolume(b.libp2p, target, next, AbortSignal.timeout(10_000))
  ])
  const refused = answers.filter(r => r.status === 'rejected').map(r => String((r).reason))
  t.deepEqual(refused, [], 'no member is refused')
  const replies = answers.map(r => (r as PromiseFulfilledResult<{ created: boolean, volume?: unknown }>).value)
  t.is(replies.filter(r => r.created).length, 1, 'created once')
  t.true(replies.every(r => r.volume !== undefined), 'both answered with the configuration held')
  t.is((await c.store.requireVolume('race')).generation, next.generation)
})
