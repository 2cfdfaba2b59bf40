import '../core/polyfill.js'
import test from 'ava'
import { peerIdFromString } from '@libp2p/peer-id'
import { startNode, waitFor } from './helpers.js'
import { bytes, read } from './replication-helpers.js'

// Found in CI (wannabe "writes on any member during the copy", Node 20, a loaded machine): the
// member added to a volume never received it. The announce to it got no answer in time, and a
// greeting runs only when a peer connects: while the connection lasted, nothing told it again.

test('an announce lost on the way to a connected new member is sent again: it gets the volume and copies it, on the same connection', async t => {
  t.timeout(60_000)
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await waitFor(() => a.peers.isConnected(b.peerId) ? true : undefined)
  const connection = a.libp2p.getConnections(peerIdFromString(b.peerId))[0].id
  await a.createVolume({ name: 'lost' })
  await a.volumes.putFile('lost', '/f', bytes(Buffer.from('written before b was added')))
  // The announce of the change and the first greeting after it are both lost.
  b.links.loseAnnounces(2)
  const added = await a.sync.addReplica('lost', b.peerId)
  t.deepEqual(added.announce.map(r => [r.peerId, r.status]), [[b.peerId, 'refused']])
  t.is(await b.store.getVolume('lost'), undefined, 'b did not get the announce')
  const vol = await waitFor(async () => { const v = await b.store.getVolume('lost'); return v?.state === 'steady' ? v : undefined }, 100)
  t.deepEqual(vol.members, [a.peerId, b.peerId].sort())
  t.is((await read(b, 'lost', '/f')).toString(), 'written before b was added')
  t.is(a.libp2p.getConnections(peerIdFromString(b.peerId))[0]?.id, connection, 'no new connection was needed')
})
