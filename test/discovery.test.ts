import '../core/polyfill.js'
import test from 'ava'
import { Topology } from '../testing/topology.js'

/** Peer ids `name` is connected to now. */
async function connectedOf (topo: Topology, name: string): Promise<Set<string>> {
  return new Set((await topo.client(name).peers()).peers.filter(p => p.connected).map(p => p.peerId))
}

/** Waits until `name` is connected to every one of `others` (node names); fails after `ms` naming who is missing. */
async function waitConnected (topo: Topology, name: string, others: string[], ms = 30_000): Promise<number> {
  const t0 = Date.now()
  while (true) {
    const c = await connectedOf(topo, name)
    const missing = others.filter(o => !c.has(topo.node(o).peerId))
    if (missing.length === 0) return Date.now() - t0
    if (Date.now() - t0 > ms) throw new Error(`${name} is not connected to ${missing.join(', ')} after ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

test('nodes told only one --bootstrap peer: a node added through another member, a re-added member and readers find the peers they need by themselves', async t => {
  t.timeout(180_000)
  // Every node but n1 knows only n1's address (--bootstrap); n1 is a member of the volume.
  const topo = await Topology.start({ nodes: 8, kind: 'in-process', connect: 'bootstrap' })
  t.teardown(async () => { await topo.close() })
  await topo.createVolume('v', { members: ['n1', 'n2', 'n3'] }, { timeoutMs: 30_000 })
  await topo.write('n1', 'v', '/a.txt', 'hello swarm')
  await waitConnected(topo, 'n2', ['n1', 'n3'])

  // Added through n2, which has never been connected to n6: found through n1, and n6 then
  // finds n2 and n3 itself (it knew only n1).
  await topo.addReplica('v', 'n2', 'n6')
  t.log(`n6 connected to every member ${await waitConnected(topo, 'n6', ['n1', 'n2', 'n3'])} ms after add-replica`)
  await topo.waitForSteady('v', { timeoutMs: 60_000 })

  // Removed, restarted (its records of the other members are pruned) and added again through n3.
  await topo.removeReplica('v', 'n1', 'n6')
  await topo.restart('n6')
  await topo.addReplica('v', 'n3', 'n6')
  t.log(`re-added n6 connected to every member after ${await waitConnected(topo, 'n6', ['n1', 'n2', 'n3'])} ms`)

  // Readers connect to every member and to fellow readers (they fetch from each other).
  for (const r of ['n7', 'n8']) await topo.client('n1').grantReader('v', topo.node(r).peerId)
  await waitConnected(topo, 'n7', ['n1', 'n2', 'n3', 'n8'])
  await waitConnected(topo, 'n8', ['n1', 'n2', 'n3', 'n7'])
  t.is((await topo.read('n8', 'v', '/a.txt')).toString(), 'hello swarm')
  // n4 and n5 hold nothing: nothing made them connect to anyone but their bootstrap peer.
  const n4 = await connectedOf(topo, 'n4')
  t.deepEqual([...n4], [topo.node('n1').peerId])
})
