import '../core/polyfill.js'
import test from 'ava'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { Topology } from '../testing/topology.js'

// A swarm of 100 in-process nodes failed to start: a port picked free for one node was taken
// by another node's outbound dial before it listened, and the harness did not fall back.
test('a topology node whose listen port was taken while it was down starts on another port', async t => {
  const topo = await Topology.start({ nodes: 1, kind: 'in-process' })
  t.teardown(async () => { await topo.close() })
  const before = topo.node('n1').multiaddrs[0]
  const port = Number(/\/tcp\/(\d+)/.exec(before)![1])
  await topo.stop('n1')
  const squatter = createServer()
  squatter.listen(port, '127.0.0.1')
  await once(squatter, 'listening')
  t.teardown(() => { squatter.close() })
  await topo.restart('n1')
  const after = topo.node('n1').multiaddrs[0]
  t.not(after, before)
  t.truthy(await topo.client('n1').status())
})
