import '../core/polyfill.js'
import test from 'ava'
import { startNode, waitFor, runCli } from './helpers.js'
import { bytes, converged, read } from './replication-helpers.js'
import type { ReplicantNode } from '../node/replicant-node.js'
import type { ConflictList } from '../api/types.js'

async function isolate (x: ReplicantNode, others: ReplicantNode[]): Promise<void> {
  for (const o of others) {
    await x.peers.block([o.peerId])
    await o.peers.block([x.peerId])
  }
}

function healAll (nodes: ReplicantNode[]): void { for (const n of nodes) n.peers.unblock() }

test('conflicts and resolve round-trip through the CLI on three members; every member agrees after each resolve', async t => {
  t.timeout(240_000)
  const a = await startNode(t)
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  const c = await startNode(t, { join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'cf', replicas: [b.peerId, c.peerId] })
  await a.volumes.putFile('cf', '/doc.txt', bytes(Buffer.from('base')), { mtime: 500 })
  await a.volumes.putFile('cf', '/keep.txt', bytes(Buffer.from('base')), { mtime: 500 })
  await converged([a, b, c], 'cf', tr => tr.length === 2)

  // b writes both files apart from a and c; a writes them too; they meet.
  await isolate(b, [a, c])
  await a.volumes.putFile('cf', '/doc.txt', bytes(Buffer.from('a: the later version')), { mtime: 3_000 })
  await b.volumes.putFile('cf', '/doc.txt', bytes(Buffer.from('b: earlier')), { mtime: 2_000 })
  await a.volumes.putFile('cf', '/keep.txt', bytes(Buffer.from('a keeps this')), { mtime: 3_000 })
  await b.volumes.putFile('cf', '/keep.txt', bytes(Buffer.from('b lost')), { mtime: 2_000 })
  healAll([a, b, c])
  await converged([a, b, c], 'cf', tr => tr.length === 4)

  // Every member lists the same two conflicts, with both versions.
  const lists: ConflictList[] = []
  for (const n of [a, b, c]) {
    const r = await runCli(['conflicts', 'cf', '--json'], { dataDir: n.dataDir })
    t.is(r.code, 0, r.stderr)
    lists.push(JSON.parse(r.stdout) as ConflictList)
  }
  for (const l of lists) t.deepEqual(l, lists[0])
  const doc = lists[0].conflicts.find(x => x.path === '/doc.txt')!
  t.truthy(doc, 'doc.txt listed')
  t.is(doc.current!.size, 'a: the later version'.length)
  t.is(doc.current!.mtime, 3_000)
  t.is(doc.other.size, 'b: earlier'.length)
  t.is(doc.other.mtime, 2_000)
  t.regex(doc.other.path, /^\/doc\.conflict-[0-9a-f]{8}\.txt$/)
  t.is(doc.current!.writer, a.peerId)
  t.is(doc.other.writer, b.peerId)
  t.true(doc.other.vector[b.peerId] > 0 && doc.current!.vector[a.peerId] > 0)
  const text = await runCli(['conflicts', 'cf'], { dataDir: c.dataDir })
  t.regex(text.stdout, /\/doc\.txt\n {4}current: \/doc\.txt {2}20 B .* writer 12D3KooW/)
  t.regex(text.stdout, /2 conflict\(s\)/)

  // Keep the other version of doc.txt (on c), the current one of keep.txt (on b).
  const other = await runCli(['resolve', 'cf', '/doc.txt', '--keep', 'other'], { dataDir: c.dataDir })
  t.is(other.code, 0, other.stderr)
  t.regex(other.stdout, /kept other \(written at the path\); removed \/doc\.conflict-/)
  const current = await runCli(['resolve', 'cf', '/keep.txt', '--keep', 'current', '--json'], { dataDir: b.dataDir })
  t.is(current.code, 0, current.stderr)
  t.like(JSON.parse(current.stdout), { volume: 'cf', path: '/keep.txt', kept: 'current', written: false })

  const tree = await converged([a, b, c], 'cf', tr => tr.length === 2)
  t.deepEqual(tree.map(l => l.split(' ')[0]), ['/doc.txt', '/keep.txt'])
  for (const n of [a, b, c]) {
    t.is((await read(n, 'cf', '/doc.txt')).toString(), 'b: earlier', 'the other version everywhere')
    t.is((await read(n, 'cf', '/keep.txt')).toString(), 'a keeps this', 'the current version everywhere')
    const after = await runCli(['conflicts', 'cf', '--json'], { dataDir: n.dataDir })
    t.deepEqual((JSON.parse(after.stdout) as ConflictList).conflicts, [], 'no conflict left')
  }

  // Bad input: a clear error, nothing changed.
  const none = await runCli(['resolve', 'cf', '/doc.txt', '--keep', 'other'], { dataDir: a.dataDir })
  t.is(none.code, 1)
  t.regex(none.stderr, /no conflict at \/doc\.txt.*\[FILE_NOT_FOUND\]/)
  const bad = await runCli(['resolve', 'cf', '/doc.txt', '--keep', 'mine'], { dataDir: a.dataDir })
  t.not(bad.code, 0)
  t.regex(bad.stderr, /Allowed choices are current, other/)
  await waitFor(async () => (await converged([a, b, c], 'cf')).length === 2 ? true : undefined)
})
