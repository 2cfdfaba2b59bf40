import '../core/polyfill.js'
import test from 'ava'
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { startNode, waitFor, sha256Stream, spawnNodeProcess, tmpDir, sleep, asyncSource, clientOf } from './helpers.js'
import { converged, bytes, read, paths } from './replication-helpers.js'
import { Readable } from 'node:stream'
import type { ReplicantNode } from '../node/replicant-node.js'

const MiB = 1024 * 1024
const CHUNK = 64 * 1024

/** Deterministic bytes (AES-CTR keystream of `seed`), with [patch.offset, +len) from another seed. */
function pattern (size: number, seed: string, patch?: { offset: number, len: number, seed: string }): AsyncGenerator<Uint8Array> {
  return asyncSource(patternBlocks(size, seed, patch))
}

function * patternBlocks (size: number, seed: string, patch?: { offset: number, len: number, seed: string }): Generator<Uint8Array> {
  const stream = (s: string): ReturnType<typeof createCipheriv> => createCipheriv('aes-128-ctr', createHash('sha256').update(s).digest().subarray(0, 16), Buffer.alloc(16))
  const main = stream(seed)
  const alt = patch !== undefined ? stream(patch.seed) : undefined
  const zero = Buffer.alloc(MiB)
  for (let off = 0; off < size; off += MiB) {
    const n = Math.min(MiB, size - off)
    const block = main.update(zero.subarray(0, n))
    if (patch !== undefined && alt !== undefined && patch.offset < off + n && patch.offset + patch.len > off) {
      const from = Math.max(patch.offset, off)
      const to = Math.min(patch.offset + patch.len, off + n)
      alt.update(zero.subarray(0, from - off)) // keep the alt stream aligned with offsets
      alt.update(zero.subarray(0, 0))
      const p = stream(`${patch.seed}@${from}`).update(zero.subarray(0, to - from))
      p.copy(block, from - off)
    }
    yield block
  }
}

async function digest (node: ReplicantNode, volume: string, path: string): Promise<string> {
  return (await sha256Stream(node.volumes.readFile(volume, await node.volumes.stat(volume, path)))).hex
}

async function infoOf (node: ReplicantNode, volume: string): Promise<any> {
  return await node.volumeInfo(volume)
}

function decisionWith (info: any, peer: string): { decision: string, why: string } | undefined {
  return info.decisions.find((d: any) => d.peer === peer)
}

test('minicopy: a member away while 1% changed receives about the changed bytes, and ends identical', async t => {
  t.timeout(300_000)
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'mc', replicas: [b.peerId] })
  const bigSize = 48 * MiB
  for (let i = 0; i < 4; i++) await a.volumes.putFile('mc', `/big${i}`, pattern(bigSize, `big${i}`))
  for (let i = 0; i < 100; i++) await a.volumes.putFile('mc', `/small/${i}`, pattern(16 * 1024, `small${i}`))
  await converged([a, b], 'mc', tr => tr.length === 104)
  await waitFor(async () => (await infoOf(b, 'mc')).state === 'steady' ? true : undefined)
  const bDir = b.dataDir
  await b.stop()
  // 1% of 196 MiB: 480 KiB rewritten inside each big file, 20 small files rewritten.
  let changed = 0
  for (let i = 0; i < 4; i++) {
    const patch = { offset: (37 + i * 101) * CHUNK, len: 8 * CHUNK - 4096 + 4096, seed: `patch${i}` }
    await a.volumes.putFile('mc', `/big${i}`, pattern(bigSize, `big${i}`, patch))
    changed += patch.len
  }
  for (let i = 0; i < 20; i++) {
    await a.volumes.putFile('mc', `/small/${i}`, pattern(16 * 1024, `small${i}-v2`))
    changed += 16 * 1024
  }
  const b2 = await startNode(t, { api: false, dataDir: bDir })
  await converged([a, b2], 'mc', tr => tr.length === 104 && tr.some(l => l.startsWith('/small/0 ')))
  const decision = await waitFor(async () => decisionWith(await infoOf(b2, 'mc'), a.peerId))
  t.is(decision.decision, 'minicopy', decision.why)
  const received = b2.sync.fetcher.counters.bytesReceived
  t.true(received <= 1.1 * changed, `received ${received} chunk bytes for ${changed} changed bytes`)
  t.true(received >= changed, 'every changed byte had to travel')
  for (let i = 0; i < 4; i++) t.is(await digest(b2, 'mc', `/big${i}`), await digest(a, 'mc', `/big${i}`))
})

test('a replica with another volume id is refused, nothing exchanged; --discard-local recopies it', async t => {
  t.timeout(120_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'shared' })
  await a.volumes.putFile('shared', '/from-a', bytes(Buffer.from('the real volume')))
  // b has a volume of the same name made elsewhere (a blank or foreign store).
  const b = await startNode(t, { api: false })
  await b.createVolume({ name: 'shared' })
  await b.volumes.putFile('shared', '/only-on-b', bytes(Buffer.from('foreign data')))
  const foreignId = (await b.store.requireVolume('shared')).id
  await b.peers.join(a.multiaddrs()[0])
  const added = await a.sync.addReplica('shared', b.peerId)
  t.is(added.announce[0].status, 'refused')
  // a is not a member of b's volume: it is told only that no such volume lists it (b's ids stay on b).
  t.regex(added.announce[0].error ?? '', /no volume 'shared' on this node lists/)
  await sleep(1500)
  t.deepEqual(await paths(b, 'shared'), ['/only-on-b'], 'nothing reached b')
  t.deepEqual(await paths(a, 'shared'), ['/from-a'], 'nothing reached a')
  const infoB = await infoOf(b, 'shared')
  t.regex(infoB.lacking.refused, /unrelated replicas/)
  t.is(infoB.id, foreignId)
  // The operator asks for the foreign replica to be discarded.
  const bDir = b.dataDir
  await b.stop()
  const lines: string[] = []
  // Only a member or a peer the operator names with --join may have the local replica discarded.
  const b2 = await startNode(t, { api: false, dataDir: bDir, discardLocal: ['shared'], join: [a.multiaddrs()[0]], report: l => lines.push(l) })
  await converged([a, b2], 'shared', tr => tr.length === 1)
  t.is((await b2.store.requireVolume('shared')).id, (await a.store.requireVolume('shared')).id)
  t.is((await read(b2, 'shared', '/from-a')).toString(), 'the real volume')
  t.true(lines.some(l => /deleting this node's replica of volume shared .*1 files/.test(l)), lines.join('\n'))
})

test('crash: kill -9 during writes, restart runs a merge, ends steady and identical, no acknowledged write lost', async t => {
  t.timeout(240_000)
  const dir = await tmpDir(t)
  const n1 = await spawnNodeProcess(t, `${dir}/n1`)
  const ma1 = /listening: (\S+)/.exec(n1.stdout())![1]
  const n2 = await spawnNodeProcess(t, `${dir}/n2`, ['--join', ma1])
  const c1 = clientOf(n1)
  const c2 = clientOf(n2)
  await c1.createVolume({ name: 'k', replicas: [n2.peerId] })
  const acked = new Map<string, string>()
  let stop = false
  const writer = (async () => {
    for (let i = 0; !stop; i++) {
      const data = randomBytes(20_000 + (i % 7) * 10_000)
      try {
        await c2.put('k', `/w/${i}`, Readable.from([data]), { size: data.byteLength })
        acked.set(`/w/${i}`, createHash('sha256').update(data).digest('hex'))
      } catch { return }
    }
  })()
  await waitFor(() => acked.size >= 30 ? true : undefined, 10)
  await n2.kill('SIGKILL')
  stop = true
  await writer
  const n2b = await spawnNodeProcess(t, `${dir}/n2`)
  const c2b = clientOf(n2b)
  const info = await waitFor(async () => {
    const i = await c2b.volumeInfo('k')
    return i.state === 'steady' && i.decisions.some((d: any) => d.decision === 'merge') ? i : undefined
  }, 100)
  t.true((await c2b.status()).uncleanShutdown.includes('k'))
  t.is(info.damagedChunks, 0)
  // Every write acknowledged before the kill is there, with its bytes, on both members.
  for (const c of [c2b, c1]) {
    const listed = await waitFor(async () => {
      const { files } = await c.list('k')
      const have = new Set(files.map((f: any) => f.path))
      return [...acked.keys()].every(p => have.has(p)) ? files : undefined
    }, 100)
    t.true(listed.length >= acked.size)
  }
  for (const [path, hex] of [...acked].slice(-5)) {
    const chunks: Buffer[] = []
    const body = await c1.open('k', path)
    for await (const p of body) chunks.push(p as Buffer)
    t.is(createHash('sha256').update(Buffer.concat(chunks)).digest('hex'), hex)
  }
  await Promise.all([n1.kill(), n2b.kill()])
})

test('remove a member online, then add it back: it stops serving, then catches up by minicopy', async t => {
  t.timeout(120_000)
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const c = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'rm', replicas: [b.peerId, c.peerId] })
  await a.volumes.putFile('rm', '/one', bytes(Buffer.from('one')))
  await converged([a, b, c], 'rm', tr => tr.length === 1)
  const removed = await a.sync.removeReplica('rm', b.peerId)
  t.is(removed.volume.generation, 2)
  t.false(removed.volume.members.includes(b.peerId))
  await waitFor(async () => (await b.store.requireVolume('rm')).state === 'removed' ? true : undefined)
  const err = await t.throwsAsync(read(b, 'rm', '/one'))
  t.is((err as any).code, 'VOLUME_REMOVED')
  await waitFor(async () => (await c.store.requireVolume('rm')).generation === 2 ? true : undefined)
  await a.volumes.putFile('rm', '/two', bytes(Buffer.from('two')))
  await converged([a, c], 'rm', tr => tr.length === 2)
  t.is((await b.store.listFiles('rm').next()).value?.path, '/one', 'b kept its data but got nothing new')
  t.deepEqual((await b.store.requireVolume('rm')).members.includes(b.peerId), false)
  // Back in: the rules see a known history and a watermark: minicopy.
  const readded = await c.sync.addReplica('rm', b.peerId)
  t.is(readded.volume.generation, 3)
  await converged([a, b, c], 'rm', tr => tr.length === 2)
  const d = await waitFor(async () => {
    const info = await infoOf(b, 'rm')
    return info.decisions.find((x: any) => x.decision === 'minicopy')
  })
  t.regex(d.why, /known history|same generation/)
  t.is((await read(b, 'rm', '/two')).toString(), 'two')
})

test('a member unreachable past the grace period starts a new generation on the others', async t => {
  const a = await startNode(t, { api: false, graceMs: 1500 })
  const b = await startNode(t, { api: false, graceMs: 1500, join: [a.multiaddrs()[0]] })
  const c = await startNode(t, { api: false, graceMs: 1500, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'g', replicas: [b.peerId, c.peerId] })
  await a.volumes.putFile('g', '/x', bytes(Buffer.from('x')))
  await converged([a, b, c], 'g', tr => tr.length === 1)
  const cDir = c.dataDir
  await c.stop()
  // Both may act at once before they have met fully; they settle on one generation id.
  const va = await waitFor(async () => {
    const [x, y] = [await a.store.requireVolume('g'), await b.store.requireVolume('g')]
    return x.generation >= 2 && x.genId === y.genId && x.generation === y.generation ? x : undefined
  }, 100)
  t.deepEqual(va.members.length, 3, 'membership unchanged')
  await a.volumes.putFile('g', '/y', bytes(Buffer.from('y')))
  const c2 = await startNode(t, { api: false, graceMs: 1500, dataDir: cDir })
  await converged([a, b, c2], 'g', tr => tr.length === 2)
  await waitFor(async () => (await c2.store.requireVolume('g')).genId === (await a.store.requireVolume('g')).genId ? true : undefined, 100)
  const d = await waitFor(async () => decisionWith(await infoOf(c2, 'g'), a.peerId) ?? decisionWith(await infoOf(c2, 'g'), b.peerId))
  t.is(d.decision, 'minicopy', d.why)
})

test('--no-copy refuses a full copy and leaves the volume offline; an approval lets it through', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'nc' })
  await a.volumes.putFile('nc', '/f', bytes(randomBytes(10_000)))
  const offers: any[] = []
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]], approveCopy: (o) => { offers.push(o); return Promise.resolve(false) } })
  const added = await a.sync.addReplica('nc', b.peerId)
  t.is(added.announce[0].status, 'pending')
  await waitFor(() => offers.length > 0 ? true : undefined)
  t.is(offers[0].volume, 'nc')
  t.is(offers[0].volumeId, (await a.store.requireVolume('nc')).id)
  t.is(offers[0].files, 1)
  t.is(offers[0].bytes, 10_000)
  await sleep(500)
  t.is(await b.store.getVolume('nc'), undefined, 'nothing was copied')
  t.regex((await b.status() as any).volumes.length === 0 ? 'none' : 'some', /none/)
  t.regex(b.sync.membership.offline.get('nc') ?? '', /refused by the operator/)
  // The same offer, approved, on a node that says yes.
  const c = await startNode(t, { api: false, join: [a.multiaddrs()[0]], approveCopy: () => Promise.resolve(true) })
  // b does not hold the volume, so it does not vote: a alone is no majority of {a, b}.
  await a.sync.addReplica('nc', c.peerId, { force: true })
  await waitFor(async () => (await c.store.getVolume('nc'))?.state === 'steady' ? true : undefined, 100)
  t.is((await read(c, 'nc', '/f')).byteLength, 10_000)
})

test('a compacted change log forces a full copy, never a wrong minicopy', async t => {
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'cl', replicas: [b.peerId] })
  for (let i = 0; i < 6; i++) await a.volumes.putFile('cl', `/f${i}`, bytes(Buffer.from(`file ${i}`)))
  await converged([a, b], 'cl', tr => tr.length === 6)
  // Safe compaction purges only what b has applied: here nothing is deleted yet.
  t.is((await a.compactLog('cl')).purged, 0)
  const bDir = b.dataDir
  await b.stop()
  await a.volumes.removeFile('cl', '/f0')
  await a.volumes.removeFile('cl', '/f1')
  await a.volumes.putFile('cl', '/f2', bytes(Buffer.from('file 2, changed')))
  // b has not applied the deletes: safe compaction keeps them ...
  t.is((await a.compactLog('cl')).purged, 0)
  // ... a forced one does not, and raises the floor above b's watermark.
  const head = (await a.store.requireVolume('cl')).seq
  const forced = await a.compactLog('cl', { upto: head })
  t.is(forced.purged, 2)
  t.is(forced.floor, head)
  const b2 = await startNode(t, { api: false, dataDir: bDir })
  const d = await waitFor(async () => decisionWith(await infoOf(b2, 'cl'), a.peerId))
  t.is(d.decision, 'copy')
  t.regex(d.why, /older than the peer's retained change log/)
  await waitFor(async () => (await read(b2, 'cl', '/f2').catch(() => Buffer.alloc(0))).toString() === 'file 2, changed' ? true : undefined, 100)
  t.true((await paths(b2, 'cl')).includes('/f5'))
})
