import '../core/polyfill.js'
import test from 'ava'
import { startNode, httpRequest } from './helpers.js'

// Fault injection is for tests and chaos runs only: a node answers its fault routes only when
// started with testing on (`replicant start --testing`, NodeOptions.testing).

const blockBody = JSON.stringify({ peers: [] })
const jsonHeaders = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(blockBody) }

test('a node started without testing has no fault routes', async t => {
  const node = await startNode(t, { testing: false })
  const list = await httpRequest(node.apiUrl!, { path: '/v1/faults' })
  t.is(list.status, 404)
  t.is(list.json().error.code, 'NO_ROUTE')
  const block = await httpRequest(node.apiUrl!, { method: 'POST', path: '/v1/faults/block', headers: jsonHeaders, body: blockBody })
  t.is(block.status, 404)
  t.is(block.json().error.code, 'NO_ROUTE')
})

test('a node started with testing answers its fault routes', async t => {
  const node = await startNode(t, { testing: true })
  const list = await httpRequest(node.apiUrl!, { path: '/v1/faults' })
  t.is(list.status, 200, list.body.toString('utf8'))
  t.deepEqual(list.json().blocked, [])
})
