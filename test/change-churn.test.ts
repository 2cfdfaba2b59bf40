import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { createHash } from 'node:crypto'
import { Topology, type TopologyOptions } from '../testing/topology.js'
import type { LocalChanges } from '../api/types.js'
import { conflictBase } from '../testing/history.js'
import { churnBound } from '../testing/chaos-churn.js'
import { sleep } from './helpers.js'

/*
 * Churn of local changes: members that keep resolving the same conflicts produce new local
 * seqs, conflict copies and notices with no new writes (issue 13: ~1,250 seqs for 27 writes
 * in a chaos run that did not converge). After heal and convergence no member may keep
 * changing, and what each did is bounded by a small multiple of the writes.
 */

async function topology (t: ExecutionContext, opts: TopologyOptions): Promise<Topology> {
  const topo = await Topology.start(opts)
  t.teardown(async () => { await topo.close() })
  return topo
}

const sha = (s: string): string => createHash('sha256').update(s).digest('hex')

interface Seen { seq: number, changes: LocalChanges }

async function seen (topo: Topology, node: string, volume: string): Promise<Seen> {
  const info = await topo.client(node).volumeInfo(volume)
  return { seq: info.seq, changes: info.localChanges }
}

/** Every member's seq stays put for `ms` with no writes: nobody is still re-resolving. */
async function assertQuiet (t: ExecutionContext, topo: Topology, volume: string, ms: number): Promise<Map<string, Seen>> {
  const before = new Map<string, Seen>()
  for (const n of topo.names()) before.set(n, await seen(topo, n, volume))
  await sleep(ms)
  for (const n of topo.names()) {
    const now = await seen(topo, n, volume)
    t.is(now.seq, before.get(n)!.seq, `${n} took new local seqs with no writes: ${JSON.stringify(before.get(n))} -> ${JSON.stringify(now)}`)
  }
  return before
}

// Three concurrent writes of one path, resolved in different orders on two sides of a
// partition: n1+n2 resolve (X, Y), n3+n4 resolve (Y, Z), then everyone meets. The result must
// be one file per content (Z at the path, X and Y as conflict copies), not a second copy of Y
// under the vector of an intermediate resolution, and every member must then go quiet.
test.serial('conflicts resolved in different orders end with one copy per content, and the members go quiet', async t => {
  const topo = await topology(t, { nodes: 4, kind: 'in-process' })
  await topo.createVolume('v')
  await topo.partition(['n1'], ['n2', 'n4'], ['n3'])
  const X = 'x from n1'
  const Y = 'y from n2'
  const Z = 'z from n3'
  await topo.write('n1', 'v', '/f.txt', X, { mtime: 1000 })
  await topo.write('n2', 'v', '/f.txt', Y, { mtime: 2000 })
  await topo.write('n3', 'v', '/f.txt', Z, { mtime: 3000 })
  await topo.waitForConvergence('v', { nodes: ['n2', 'n4'] })

  await topo.partition(['n1', 'n2'], ['n3', 'n4'])
  const left = await topo.waitForConvergence('v', { nodes: ['n1', 'n2'] })
  const right = await topo.waitForConvergence('v', { nodes: ['n3', 'n4'] })
  t.is(left.length, 2, 'n1+n2: the winner and one conflict copy')
  t.is(right.length, 2, 'n3+n4: the winner and one conflict copy')

  await topo.heal()
  await topo.waitForSteady('v', { timeoutMs: 60_000 })
  const tree = await topo.tree('n1', 'v')
  const byContent = new Map<string, string[]>()
  for (const e of tree) byContent.set(e.sha256, [...(byContent.get(e.sha256) ?? []), e.path])
  t.deepEqual(tree.find(e => e.path === '/f.txt')?.sha256, sha(Z), 'the latest mtime holds the path')
  t.deepEqual([...byContent.keys()].sort(), [sha(X), sha(Y), sha(Z)].sort(), 'every write is kept')
  for (const [content, paths] of byContent) t.is(paths.length, 1, `content ${content.slice(0, 8)} is held once, not at ${paths.join(', ')}`)
  t.is(tree.length, 3)
  for (const n of topo.names()) t.deepEqual(await topo.tree(n, 'v'), tree, `${n} holds the same tree`)

  const counts = await assertQuiet(t, topo, 'v', 3000)
  for (const [n, c] of counts) {
    // Three writes, one path and its two copies: each member resolves each pair at most once.
    t.true(c.changes.resolution <= 3, `${n}: ${c.changes.resolution} resolutions for 3 concurrent writes`)
    t.true(c.changes.conflictCopy <= 3, `${n}: ${c.changes.conflictCopy} conflict copies for 3 concurrent writes`)
    t.true(c.seq <= 8, `${n}: ${c.seq} local changes for 3 writes`)
  }
})

/** For each base path, the contents held at it and at its conflict copies, with their paths. */
function holdings (tree: Array<{ path: string, sha256: string }>): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>()
  for (const e of tree) {
    const base = conflictBase(e.path)
    const held = out.get(base) ?? new Map<string, string[]>()
    held.set(e.sha256, [...(held.get(e.sha256) ?? []), e.path])
    out.set(base, held)
  }
  return out
}

// The chaos shape of issue 13 made deterministic: five members write the same paths alone,
// then meet in changing pairs (so each resolves a different pair first), over a slow link
// (63 ms, 1 MB/s), with a kill -9 and a restart (a merge) before the final heal.
test.serial('five members meeting in changing pairs, a slow link and a kill -9: one copy per content, quiet after, seqs bounded by the writes', async t => {
  const names = ['n1', 'n2', 'n3', 'n4', 'n5']
  const topo = await topology(t, { nodes: names })
  await topo.createVolume('v')
  await topo.partition(...names.map(n => [n]))
  const paths = ['/a.txt', '/docs/b']
  const contents = new Map<string, string[]>(paths.map(p => [p, []]))
  for (const n of names) {
    for (const p of paths) {
      const body = `${p} from ${n}`
      await topo.write(n, 'v', p, body)
      contents.get(p)!.push(sha(body))
    }
  }
  const writes = names.length * paths.length
  await topo.slowLink('n1', 'n5', { delayMs: 63, bytesPerSecond: 1_000_000 })
  for (const groups of [[['n1', 'n2'], ['n3', 'n4'], ['n5']], [['n2', 'n3'], ['n4', 'n5'], ['n1']], [['n1', 'n5', 'n3'], ['n2', 'n4']]]) {
    await topo.partition(...groups)
    for (const g of groups) if (g.length > 1) await topo.waitForConvergence('v', { nodes: g, timeoutMs: 60_000 })
  }
  await topo.kill('n4')
  await topo.heal()
  await topo.restart('n4')
  await topo.waitForSteady('v', { timeoutMs: 90_000 })

  const tree = await topo.tree('n1', 'v')
  for (const n of names.slice(1)) t.deepEqual(await topo.tree(n, 'v'), tree, `${n} holds the same tree`)
  const held = holdings(tree)
  t.deepEqual([...held.keys()].sort(), [...paths].sort())
  for (const p of paths) {
    const byContent = held.get(p)!
    t.deepEqual([...byContent.keys()].sort(), [...contents.get(p)!].sort(), `${p}: every member's write is kept`)
    for (const [content, at] of byContent) t.is(at.length, 1, `${p}: content ${content.slice(0, 8)} is held once, not at ${at.join(', ')}`)
  }

  const counts = await assertQuiet(t, topo, 'v', 3000)
  for (const [n, c] of counts) {
    t.log(`${n}: seq ${c.seq}, since its last start ${JSON.stringify(c.changes)}`)
    t.true(c.seq <= churnBound(writes), `${n}: ${c.seq} local changes for ${writes} writes (bound ${churnBound(writes)})`)
  }
})
