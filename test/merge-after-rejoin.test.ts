/**
 * A member removed from a volume while it owed a merge (killed -9 with the volume dirty), and
 * added back while it was down: once restarted it must run the merge it owes (verify its own
 * chunks, compare the full index) and end steady, with the tree of the others. The chaos
 * schedule w4b/7 (issue 13) left such a member in `merge` for good.
 */
import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Topology } from '../testing/topology.js'
import { checkLocalChunks } from '../testing/local-chunks.js'
import { waitFor } from './helpers.js'
import { adopted, moveTo, owingMerge } from '../replication/member-state.js'
import type { VolumeRecord } from '../core/records.js'

/** How long a member may take to become steady here: seconds on an idle machine; generous under load. */
const STEADY_BOUND_MS = 60_000

test('member states: a removed replica found dirty owes a merge and, listed again, returns to merge; one removed mid-copy still resumes its copy', t => {
  const vol = { name: 'v', state: 'steady' } as unknown as VolumeRecord
  const removed = moveTo(vol, 'removed')
  t.is(adopted(removed, true).state, 'steady', 'removed clean while steady: steady again')
  const owing = owingMerge(removed)
  t.is(owing.state, 'removed')
  t.is(owing.removedFrom, 'merge')
  t.is(adopted(owing, true).state, 'merge', 'listed again, it merges')
  t.is(adopted(owing, true).removedFrom, undefined)
  t.is(adopted(owing, false).state, 'removed', 'a generation without it keeps it removed')
  t.is(adopted(owing, false).removedFrom, 'merge', '... still owing the merge')
  const midCopy = moveTo({ ...vol, state: 'copy' }, 'removed')
  t.is(owingMerge(midCopy).removedFrom, 'copy', 'a wannabe removed mid-copy resumes its copy')
  t.is(owingMerge(vol), vol, 'only a removed replica is marked')
})

async function topology (t: ExecutionContext): Promise<Topology> {
  const topo = await Topology.start({ nodes: 3 })
  t.teardown(async () => { await topo.close() })
  return topo
}

async function stateOf (topo: Topology, node: string, volume: string): Promise<string> {
  return String((await topo.client(node).volumeInfo(volume)).state)
}

async function membersOn (topo: Topology, node: string, volume: string): Promise<string[]> {
  const info = await topo.client(node).volumeInfo(volume)
  return info.members.map(p => topo.nameOf(p) ?? p).sort()
}

/** Every member lists the same files with the same bytes; returns n1's tree. */
async function sameTrees (t: ExecutionContext, topo: Topology, volume: string): Promise<string[]> {
  const [first, ...rest] = await Promise.all(['n1', 'n2', 'n3'].map(async n => await topo.tree(n, volume)))
  for (const other of rest) t.deepEqual(other.map(e => [e.path, e.sha256]), first.map(e => [e.path, e.sha256]))
  return first.map(e => e.path)
}

test.serial('removed by itself while merging after kill -9, re-added while down, restarted: it merges and ends steady with the others\' tree', async t => {
  t.timeout(240_000)
  const topo = await topology(t)
  await topo.createVolume('v')
  for (const [i, n] of ['n1', 'n2', 'n3'].entries()) await topo.write(n, 'v', `/before-${n}.bin`, randomBytes(70_000 + i))
  await topo.waitForSteady('v', { timeoutMs: STEADY_BOUND_MS })

  // n2 alone: its write exists only on it when it is killed, with the volume dirty.
  await topo.partition(['n1', 'n3'], ['n2'])
  const only = randomBytes(150_000)
  await topo.write('n2', 'v', '/only-n2.bin', only)
  await topo.kill('n2')
  await topo.restart('n2')
  t.deepEqual((await topo.client('n2').status()).uncleanShutdown, ['v'])
  // With no member reachable its merge cannot finish: it is still merging when it removes itself.
  await waitFor(async () => await stateOf(topo, 'n2', 'v') === 'merge' ? true : undefined)

  // n2 removes itself while n1 writes; the others learn it when they meet n2 again. Alone, it
  // is no majority of the three: the operator forces it (the others change nothing meanwhile).
  const writes = (async () => { for (let i = 0; i < 5; i++) await topo.write('n1', 'v', `/during-${i}.bin`, randomBytes(30_000)) })()
  await topo.removeReplica('v', 'n2', 'n2', { force: true })
  await writes
  t.is(await stateOf(topo, 'n2', 'v'), 'removed')
  await topo.heal()
  await waitFor(async () => {
    for (const n of ['n1', 'n3']) if ((await membersOn(topo, n, 'v')).join() !== 'n1,n3') return undefined
    return true
  })

  // Killed -9 while removed (still dirty), added back through n1 while down, then restarted.
  await topo.kill('n2')
  t.deepEqual((await topo.addReplica('v', 'n1', 'n2')).sort(), ['n1', 'n2', 'n3'])
  for (let i = 0; i < 3; i++) await topo.write(i % 2 === 0 ? 'n1' : 'n3', 'v', `/while-down-${i}.bin`, randomBytes(40_000))
  await topo.restart('n2')

  const started = Date.now()
  await topo.waitForSteady('v', { timeoutMs: STEADY_BOUND_MS })
  t.log(`steady ${Date.now() - started} ms after the restart`)
  t.deepEqual(await membersOn(topo, 'n2', 'v'), ['n1', 'n2', 'n3'])
  const paths = await sameTrees(t, topo, 'v')
  t.true(paths.includes('/only-n2.bin'), 'the write n2 acknowledged alone reached the others')
  t.true(paths.includes('/while-down-2.bin'), 'the writes made while n2 was down reached it')
  t.true((await topo.read('n1', 'v', '/only-n2.bin')).equals(only))
  await topo.stop('n2')
  t.deepEqual(await checkLocalChunks('n2', topo.node('n2').dataDir, 'v'), [], 'steady n2 holds every chunk itself')
})

/** Flips one byte of every non-empty pack of a stopped node: damage only a merge's verification finds. */
async function damagePacks (dataDir: string): Promise<number> {
  const dir = join(dataDir, 'chunks')
  let damaged = 0
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.dat')) continue
    const fh = await open(join(dir, name), 'r+')
    try {
      const { size } = await fh.stat()
      if (size === 0) continue
      const b = Buffer.alloc(1)
      await fh.read(b, 0, 1, 0)
      b[0] ^= 0xff
      await fh.write(b, 0, 1, 0)
      damaged++
    } finally {
      await fh.close()
    }
  }
  return damaged
}

test.serial('removed while steady, killed -9 dirty, re-added while down: restarted, it still runs the merge it owes (its damaged chunks are fetched again)', async t => {
  t.timeout(240_000)
  const topo = await topology(t)
  await topo.createVolume('v')
  for (const n of ['n1', 'n3']) await topo.write(n, 'v', `/from-${n}.bin`, randomBytes(200_000))
  await topo.waitForSteady('v', { timeoutMs: STEADY_BOUND_MS })
  t.is(await stateOf(topo, 'n2', 'v'), 'steady')

  await topo.removeReplica('v', 'n2', 'n2')
  await waitFor(async () => {
    for (const n of ['n1', 'n3']) if ((await membersOn(topo, n, 'v')).join() !== 'n1,n3') return undefined
    return true
  })
  await topo.kill('n2')
  t.true(await damagePacks(topo.node('n2').dataDir) > 0, 'a pack of n2 damaged while it is down')
  await topo.addReplica('v', 'n1', 'n2')
  await topo.restart('n2')
  t.deepEqual((await topo.client('n2').status()).uncleanShutdown, ['v'])

  await topo.waitForSteady('v', { timeoutMs: STEADY_BOUND_MS })
  await sameTrees(t, topo, 'v')
  // Whether n2 verified and refetched (damagedChunks > 0) or was given a fresh copy depends on
  // which it learned first, its restart or the re-add; either way what it serves and holds must
  // be the right bytes (before the fix it came back steady serving the damaged ones).
  t.log(`damagedChunks on n2: ${(await topo.client('n2').volumeInfo('v')).damagedChunks}`)
  await topo.stop('n2')
  t.deepEqual(await checkLocalChunks('n2', topo.node('n2').dataDir, 'v'), [], 'steady n2 holds every chunk itself, with the right bytes')
})
