import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { startNode, waitFor, clientOf, httpRequest } from './helpers.js'
import { bytes, converged } from './replication-helpers.js'
import type { ReplicantNode } from '../node/replicant-node.js'
import type { SseEvent } from '../api/client.js'

/** Everything a node's GET /v1/events sends, collected until the test ends. */
function listen (t: ExecutionContext, node: ReplicantNode, opts: { since?: number } = {}): { events: SseEvent[], next: (pred: (e: SseEvent) => boolean, what: string) => Promise<SseEvent> } {
  const events: SseEvent[] = []
  const stop = new AbortController()
  t.teardown(() => { stop.abort() })
  void (async () => {
    for await (const e of clientOf(node).events({ signal: stop.signal, ...opts })) events.push(e)
  })().catch(() => {})
  const next = async (pred: (e: SseEvent) => boolean, what: string): Promise<SseEvent> => {
    const deadline = Date.now() + 30_000
    return await waitFor(() => {
      if (Date.now() > deadline) throw new Error(`no ${what} event; got ${events.map(e => `${e.kind} ${JSON.stringify(e.data)}`).join('\n')}`)
      return events.find(pred)
    }, 20)
  }
  return { events, next }
}

async function blockBoth (x: ReplicantNode, y: ReplicantNode): Promise<void> {
  await x.peers.block([y.peerId])
  await y.peers.block([x.peerId])
}

test('the events stream delivers hello, peer, state, change, progress and conflict events', async t => {
  t.timeout(180_000)
  const a = await startNode(t)
  const { events, next } = listen(t, a)
  const hello = await next(e => e.kind === 'hello', 'hello')
  t.is(hello.data.peerId, a.peerId)

  // peer: a node connects.
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  await next(e => e.kind === 'peer' && e.data.peer === b.peerId && e.data.connected === true, 'peer connect')

  // state: each member's state as a knows it, once it is known.
  await a.createVolume({ name: 'ev', replicas: [b.peerId] })
  await next(e => e.kind === 'state' && e.data.volume === 'ev' && e.data.member === a.peerId && e.data.state === 'steady' && e.data.self === true, 'state of a')
  await next(e => e.kind === 'state' && e.data.volume === 'ev' && e.data.member === b.peerId && e.data.state === 'steady', 'state of b')

  // change: a write here, with the new seq.
  await a.volumes.putFile('ev', '/w.txt', bytes(Buffer.from('hello')))
  const change = await next(e => e.kind === 'change' && e.data.volume === 'ev' && (e.data.paths as string[]).includes('/w.txt'), 'change')
  t.is(change.data.seq, 1)
  t.truthy(change.data.at)

  // progress: a new member copies 4 MiB over a link capped at 1 MiB/s; its own stream shows the copy, then its end.
  await a.volumes.putFile('ev', '/big.bin', bytes(randomBytes(4 * 1024 * 1024)))
  await converged([a, b], 'ev', tr => tr.length === 2)
  const c = await startNode(t, { join: [a.multiaddrs()[0]] })
  const onC = listen(t, c)
  a.links.set([c.peerId], { bytesPerSecond: 1024 * 1024 })
  b.links.set([c.peerId], { bytesPerSecond: 1024 * 1024 })
  await a.addReplica('ev', c.peerId)
  const running = await onC.next(e => e.kind === 'progress' && e.data.volume === 'ev' && e.data.running === true && (e.data.bytesTotal as number) > 0, 'progress')
  t.true((running.data.bytesDone as number) <= (running.data.bytesTotal as number))
  await onC.next(e => e.kind === 'progress' && e.data.volume === 'ev' && e.data.running === false, 'progress end')
  await onC.next(e => e.kind === 'state' && e.data.member === c.peerId && e.data.state === 'steady' && e.data.previous === 'copy', 'c steady after its copy')
  a.links.clear()
  b.links.clear()

  // conflict: a and b write the same path apart, then meet.
  await blockBoth(a, b)
  await next(e => e.kind === 'peer' && e.data.peer === b.peerId && e.data.connected === false, 'peer disconnect')
  await next(e => e.kind === 'state' && e.data.member === b.peerId && e.data.state === 'offline', 'b offline')
  await a.volumes.putFile('ev', '/c.txt', bytes(Buffer.from('a wrote this')), { mtime: 1_000 })
  await b.volumes.putFile('ev', '/c.txt', bytes(Buffer.from('b wrote this one')), { mtime: 2_000 })
  a.peers.unblock()
  b.peers.unblock()
  const conflict = await next(e => e.kind === 'conflict' && e.data.volume === 'ev', 'conflict')
  t.is(conflict.data.path, '/c.txt')
  t.regex(conflict.data.copy as string, /^\/c\.conflict-[0-9a-f]{8}\.txt$/)

  // Ids increase; a client that comes back with the last id it saw gets what it missed, once.
  const ids = events.map(e => e.id).filter((id): id is number => id !== undefined && id > 0)
  t.deepEqual(ids, [...ids].sort((x, y) => x - y))
  const mid = events.find(e => e.kind === 'change')!.id!
  const again = listen(t, a, { since: mid })
  await again.next(e => e.kind === 'conflict', 'replayed conflict')
  t.false(again.events.some(e => e.id === mid), 'the event named by since is not sent again')
})

test('GET /v1/events needs the token; a stream closed by its client is unsubscribed', async t => {
  const a = await startNode(t)
  t.is((await httpRequest(a.apiUrl!, { path: '/v1/events', token: null })).status, 401)
  const stop = new AbortController()
  const got: SseEvent[] = []
  const reading = (async () => { for await (const e of clientOf(a).events({ signal: stop.signal })) got.push(e) })()
  await waitFor(() => got.length > 0 ? true : undefined)
  t.is(a.ops.events.subscribers, 1)
  stop.abort()
  await reading
  await waitFor(() => a.ops.events.subscribers === 0 ? true : undefined)
  t.pass()
})
