import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { createWriteStream, createReadStream } from 'node:fs'
import { readFile, writeFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { startNode, tmpDir, waitFor, runCli, clientOf } from './helpers.js'
import { tree, converged, bytes, read, paths } from './replication-helpers.js'
import type { ReplicantNode } from '../node/replicant-node.js'
import { writeDump } from '../replication/dump.js'

async function dumpTo (node: ReplicantNode, vol: string, snap: string, file: string, since?: string): Promise<void> {
  await clientOf(node).dump(vol, snap, createWriteStream(file), since)
}

async function restoreFrom (node: ReplicantNode, file: string): Promise<any> {
  return await clientOf(node).restore(createReadStream(file), (await stat(file)).size)
}

test('full dump, restore on a fresh node: identical tree and volume id; incremental on its base gives the later snapshot', async t => {
  const dir = await tmpDir(t)
  const a = await startNode(t)
  await a.createVolume({ name: 'd' })
  for (let i = 0; i < 30; i++) await a.volumes.putFile('d', `/f${i}`, bytes(randomBytes(500 + i * 7000)))
  await a.volumes.createSnapshot('d', 's1')
  const full = join(dir, 'full.dump')
  await dumpTo(a, 'd', 's1', full)
  await a.volumes.putFile('d', '/f3', bytes(Buffer.from('changed after s1')))
  await a.volumes.removeFile('d', '/f4')
  await a.volumes.putFile('d', '/new', bytes(randomBytes(70_000)))
  await a.volumes.createSnapshot('d', 's2')
  const incr = join(dir, 'incr.dump')
  await dumpTo(a, 'd', 's2', incr, 's1')
  t.true((await stat(incr)).size < (await stat(full)).size / 3, 'the incremental holds only what changed')

  const b = await startNode(t)
  const r = await restoreFrom(b, full)
  t.is(r.files, 30)
  t.false(r.incremental)
  t.is((await b.store.requireVolume('d')).id, (await a.store.requireVolume('d')).id)
  const atS1: string[] = []
  for await (const f of a.volumes.listFilesAt('d', 's1')) atS1.push(f.path)
  t.deepEqual(await paths(b, 'd'), atS1)
  t.deepEqual(await read(b, 'd', '/f3'), await (async () => {
    const rec = await a.volumes.statAt('d', 's1', '/f3')
    const parts: Uint8Array[] = []
    for await (const p of a.volumes.readFile('d', rec)) parts.push(p)
    return Buffer.concat(parts)
  })())
  const r2 = await restoreFrom(b, incr)
  t.true(r2.incremental)
  t.is(r2.deletes, 1)
  const [ta, tb] = [await tree(a, 'd'), await tree(b, 'd')]
  t.deepEqual(tb.map(l => l.split(' ').slice(0, 3).join(' ')), ta.map(l => l.split(' ').slice(0, 3).join(' ')), 'b now shows s2')
  t.is((await read(b, 'd', '/f3')).toString(), 'changed after s1')
  // The same incremental again: its base (s1) is no longer what b holds.
  const again = await t.throwsAsync(restoreFrom(b, incr))
  t.is((again as any).code, 'BASE_MISMATCH')
  // On a node without the base at all.
  const c = await startNode(t)
  const none = await t.throwsAsync(restoreFrom(c, incr))
  t.is((none as any).code, 'BASE_MISMATCH')
})

test('a corrupted byte anywhere, or a truncated dump, is refused without touching the store', async t => {
  const dir = await tmpDir(t)
  const a = await startNode(t)
  await a.createVolume({ name: 'c' })
  for (let i = 0; i < 5; i++) await a.volumes.putFile('c', `/f${i}`, bytes(randomBytes(100_000)))
  await a.volumes.createSnapshot('c', 's')
  const good = join(dir, 'good.dump')
  await dumpTo(a, 'c', 's', good)
  const bytesOf = await readFile(good)
  const b = await startNode(t)
  for (const at of [3, 20, Math.floor(bytesOf.length / 2), bytesOf.length - 10, bytesOf.length - 1]) {
    const bad = Buffer.from(bytesOf)
    bad[at] ^= 0x55
    const f = join(dir, `bad-${at}.dump`)
    await writeFile(f, bad)
    const err = await t.throwsAsync(restoreFrom(b, f))
    t.is((err as any).code, 'BAD_DUMP', `corruption at byte ${at}`)
  }
  const cut = join(dir, 'cut.dump')
  await writeFile(cut, bytesOf.subarray(0, bytesOf.length - 200))
  t.is((await t.throwsAsync(restoreFrom(b, cut)) as any).code, 'BAD_DUMP')
  t.is(await b.store.getVolume('c'), undefined, 'nothing was restored')
  t.is((await restoreFrom(b, good)).files, 5, 'the intact dump still restores')
})

test('a member seeded from a dump joins by minicopy: it receives about the changes since the dump', async t => {
  t.timeout(180_000)
  const dir = await tmpDir(t)
  const a = await startNode(t)
  await a.createVolume({ name: 'seed' })
  for (let i = 0; i < 8; i++) await a.volumes.putFile('seed', `/big${i}`, bytes(randomBytes(2 * 1024 * 1024)))
  await a.volumes.createSnapshot('seed', 'ship')
  const file = join(dir, 'seed.dump')
  // The CLI path: dump -o, then restore on the new node.
  const d = await runCli(['dump', 'seed', '--snapshot', 'ship', '-o', file], { dataDir: a.dataDir })
  t.is(d.code, 0, d.stderr)
  const changed = randomBytes(300_000)
  await a.volumes.putFile('seed', '/after-dump', bytes(changed))
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  const r = await runCli(['restore', file], { dataDir: b.dataDir })
  t.is(r.code, 0, r.stderr)
  t.regex(r.stdout, /restored seed .* 8 files/)
  await a.sync.addReplica('seed', b.peerId)
  await converged([a, b], 'seed', tr => tr.length === 9)
  const decision = await waitFor(async () => ((await b.volumeInfo('seed')) as any).decisions.find((x: any) => x.peer === a.peerId))
  t.is(decision.decision, 'minicopy', decision.why)
  const received = b.sync.fetcher.counters.bytesReceived + b.sync.copy.counters.bytesReceived + b.sync.reader.counters.bytesReceived
  t.true(received <= 1.1 * changed.byteLength, `received ${received} for ${changed.byteLength} changed`)
  t.is((await read(b, 'seed', '/after-dump')).byteLength, changed.byteLength)
})

test('a dump being taken keeps its snapshot (and so its chunks) from deletion and GC until it ends', async t => {
  const dir = await tmpDir(t)
  const a = await startNode(t)
  await a.createVolume({ name: 'p' })
  const old = randomBytes(300_000)
  await a.volumes.putFile('p', '/f', bytes(old))
  await a.volumes.createSnapshot('p', 's1')
  // Only the snapshot still references the old bytes now.
  await a.volumes.putFile('p', '/f', bytes(randomBytes(1000)))
  const vol = await a.store.requireVolume('p')
  const dump = writeDump(a.store, vol, await a.store.getSnapshot('p', 's1'), undefined, a.peerId)
  const pieces: Uint8Array[] = [(await dump.next()).value as Uint8Array]
  // Paused after its first piece: the snapshot is in use.
  const busy = await t.throwsAsync(clientOf(a).deleteSnapshot('p', 's1'))
  t.is((busy as any).code, 'SNAPSHOT_IN_USE')
  const gc = await a.collectGarbage({ youngSeconds: 0 }) as { deleted: number }
  t.is(gc.deleted, 0, 'nothing the snapshot references is collected while the dump runs')
  for await (const p of dump) pieces.push(p)
  const file = join(dir, 'p.dump')
  await writeFile(file, Buffer.concat(pieces))
  const b = await startNode(t)
  await restoreFrom(b, file)
  t.deepEqual(await read(b, 'p', '/f'), old, 'the dump holds the snapshot\'s bytes')
  // The dump is over: the snapshot may go, and its chunks with it.
  await clientOf(a).deleteSnapshot('p', 's1')
  const after = await a.collectGarbage({ youngSeconds: 0 }) as { deleted: number }
  t.is(after.deleted, 5, 'the snapshot\'s five chunks are reclaimed once it is deleted')
})

test('a restore killed between two batches leaves a prefix of the snapshot, and the same dump restores again over it', async t => {
  t.timeout(120_000)
  const { Topology } = await import('../testing/topology.js')
  const topo = await Topology.start({ nodes: ['src', 'dst'], dir: await tmpDir(t), keepDir: true })
  t.teardown(async () => { await topo.close() })
  await topo.createVolume('solo', { members: ['src'], chunkSize: 16 * 1024 })
  // Chunks go in batches of 64: three files of ~40 chunks each commit in more than one batch.
  const files = [1, 2, 3].map(i => ({ path: `/f${i}`, data: randomBytes(640_000 + i) }))
  for (const f of files) await topo.write('src', 'solo', f.path, f.data)
  const snap = await topo.client('src').createSnapshot('solo')
  const file = join(topo.dir, 'solo.dump')
  const out = createWriteStream(file)
  await topo.client('src').dump('solo', snap.name, out)
  await new Promise<void>(resolve => { if (out.closed) resolve(); else out.once('close', () => resolve()) })
  const restore = async (): Promise<unknown> => await topo.client('dst').restore(createReadStream(file), (await stat(file)).size)
  await topo.crashAt('dst', 'restore-batch')
  await t.throwsAsync(restore())
  await waitFor(() => topo.node('dst').running ? undefined : true) // it killed itself at the point
  await topo.restart('dst')
  // What the killed restore left: files of the snapshot, each whole, fewer than all.
  const left = await topo.list('dst', 'solo')
  t.true(left.length < files.length, `${left.length} files left`)
  for (const f of left) t.true((await topo.read('dst', 'solo', f.path)).equals(files.find(x => x.path === f.path)!.data), f.path)
  // Restored again from scratch: the whole snapshot.
  t.like(await restore(), { files: 3 })
  t.deepEqual((await topo.list('dst', 'solo')).map(f => f.path), files.map(f => f.path))
  for (const f of files) t.true((await topo.read('dst', 'solo', f.path)).equals(f.data), f.path)
  // A volume that is there because it was restored completely is not restored over.
  t.is((await t.throwsAsync(restore()) as { code?: string }).code, 'VOLUME_EXISTS')
})
