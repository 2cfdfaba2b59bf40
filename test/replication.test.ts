import '../core/polyfill.js'
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { startNode, waitFor, randomSource, sha256Stream } from './helpers.js'
import { converged, cluster, bytes, read, paths } from './replication-helpers.js'

test('two members converge after writes on each', async t => {
  const [a, b] = await cluster(t, 2)
  await a.createVolume({ name: 'v', replicas: [b.peerId] })
  await a.volumes.putFile('v', '/from-a', bytes(Buffer.from('hello from a')))
  await b.volumes.putFile('v', '/dir/from-b', bytes(randomBytes(200_000)))
  const final = await converged([a, b], 'v', tr => tr.length === 2)
  t.deepEqual(final.map(l => l.split(' ')[0]), ['/dir/from-b', '/from-a'])
  t.is((await read(b, 'v', '/from-a')).toString(), 'hello from a')
  t.deepEqual(await read(a, 'v', '/dir/from-b'), await read(b, 'v', '/dir/from-b'))
  const vb = await b.store.requireVolume('v')
  const va = await a.store.requireVolume('v')
  t.is(vb.id, va.id, 'same volume id on every member')
  t.is(vb.generation, va.generation)
})

test('three members converge; a change made on any member reaches all others', async t => {
  const nodes = await cluster(t, 3)
  const [a, b, c] = nodes
  const created = await a.createVolume({ name: 'v3', replicas: [b.peerId, c.peerId] })
  t.deepEqual(created.announce.map(x => x.status).sort(), ['created', 'created'])
  for (const [i, n] of nodes.entries()) {
    for (let k = 0; k < 5; k++) await n.volumes.putFile('v3', `/n${i}/f${k}`, bytes(randomBytes(1000 + k)))
  }
  await c.volumes.putFile('v3', '/n0/f0', bytes(Buffer.from('c overwrote a file a wrote first')))
  await converged(nodes, 'v3', tr => tr.length === 15 && tr.some(l => l.startsWith('/n0/f0 32 ')))
  await b.volumes.removeFile('v3', '/n2/f4')
  const final = await converged(nodes, 'v3', tr => tr.length === 14)
  t.false(final.some(l => l.startsWith('/n2/f4 ')))
  for (const n of nodes) t.is((await read(n, 'v3', '/n0/f0')).toString(), 'c overwrote a file a wrote first')
})

test('concurrent writes to one path keep both versions, identical on all members', async t => {
  const nodes = await cluster(t, 3)
  const [a, b, c] = nodes
  await a.createVolume({ name: 'c', replicas: [b.peerId, c.peerId] })
  await converged(nodes, 'c')
  // Cut b off so both writes are truly concurrent, then let them meet.
  await b.peers.block([a.peerId, c.peerId])
  await a.peers.block([b.peerId])
  await c.peers.block([b.peerId])
  await a.volumes.putFile('c', '/doc.txt', bytes(Buffer.from('version written on a')))
  await b.volumes.putFile('c', '/doc.txt', bytes(Buffer.from('version written on b')))
  await converged([a, c], 'c', tr => tr.length === 1)
  t.is((await read(b, 'c', '/doc.txt')).toString(), 'version written on b')
  for (const n of nodes) n.peers.unblock()
  const final = await converged(nodes, 'c', tr => tr.length === 2)
  const names = final.map(l => l.split(' ')[0])
  t.true(names.includes('/doc.txt'))
  const copy = names.find(p => p !== '/doc.txt')
  t.regex(copy ?? '', /^\/doc\.conflict-[0-9a-f]{8}\.txt$/)
  const contents = new Set<string>()
  for (const n of nodes) {
    contents.add((await read(n, 'c', '/doc.txt')).toString() + '|' + (await read(n, 'c', copy!)).toString())
  }
  t.is(contents.size, 1, 'every member shows the same winner and the same conflict copy')
  const [winner, loser] = [...contents][0].split('|')
  t.deepEqual([winner, loser].sort(), ['version written on a', 'version written on b'], 'no write was lost')
})

test('delete against a concurrent update: the update survives everywhere', async t => {
  const nodes = await cluster(t, 2)
  const [a, b] = nodes
  await a.createVolume({ name: 'd', replicas: [b.peerId] })
  await a.volumes.putFile('d', '/f', bytes(Buffer.from('original')))
  await converged(nodes, 'd', tr => tr.length === 1)
  await a.peers.block([b.peerId])
  await b.peers.block([a.peerId])
  await a.volumes.removeFile('d', '/f')
  await b.volumes.putFile('d', '/f', bytes(Buffer.from('updated on b')))
  t.deepEqual(await paths(a, 'd'), [])
  a.peers.unblock()
  b.peers.unblock()
  await converged(nodes, 'd', tr => tr.length === 1)
  for (const n of nodes) t.is((await read(n, 'd', '/f')).toString(), 'updated on b')
  // A delete with no concurrent update converges as a delete.
  await b.volumes.removeFile('d', '/f')
  await converged(nodes, 'd', tr => tr.length === 0)
  t.pass()
})

test('a member offline during writes catches up on restart by redialling by itself', async t => {
  const nodes = await cluster(t, 3)
  const [a, b, c] = nodes
  await a.createVolume({ name: 'o', replicas: [b.peerId, c.peerId] })
  await a.volumes.putFile('o', '/before', bytes(Buffer.from('before')))
  await converged(nodes, 'o', tr => tr.length === 1)
  const cDir = c.dataDir
  await c.stop()
  await a.volumes.putFile('o', '/while-away-a', bytes(randomBytes(300_000)))
  await b.volumes.putFile('o', '/while-away-b', bytes(randomBytes(1000)))
  await a.volumes.removeFile('o', '/before')
  // Restart with no --join: the stored peers are redialled.
  const c2 = await startNode(t, { dataDir: cDir, api: false })
  t.is(c2.peerId, c.peerId)
  const final = await converged([a, b, c2], 'o', tr => tr.length === 2)
  t.deepEqual(final.map(l => l.split(' ')[0]), ['/while-away-a', '/while-away-b'])
})

test('1,000 small files and one 200 MiB file converge with identical sha256', async t => {
  t.timeout(240_000)
  const [a, b] = await cluster(t, 2)
  await a.createVolume({ name: 'big', replicas: [b.peerId] })
  const small = new Map<string, Buffer>()
  for (let i = 0; i < 1000; i++) small.set(`/small/${String(i).padStart(4, '0')}`, randomBytes(1 + (i * 37) % 5000))
  const queue = [...small.keys()]
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (queue.length > 0) {
      const p = queue.shift()!
      await a.volumes.putFile('big', p, bytes(small.get(p)!))
    }
  }))
  const big = randomSource(200 * 1024 * 1024)
  await a.volumes.putFile('big', '/large.bin', big.source)
  await converged([a, b], 'big', tr => tr.length === 1001)
  const rec = await b.volumes.stat('big', '/large.bin')
  t.is((await sha256Stream(b.volumes.readFile('big', rec))).hex, big.digest())
  let checked = 0
  for await (const f of b.volumes.listFiles('big', '/small/')) {
    const h = await sha256Stream(b.volumes.readFile('big', f))
    t.is(h.hex, createHash('sha256').update(small.get(f.path)!).digest('hex'))
    checked++
  }
  t.is(checked, 1000)
})

test('status reports members, connection, sequence and what is still lacking', async t => {
  const [a, b] = await cluster(t, 2)
  await a.createVolume({ name: 's', replicas: [b.peerId] })
  await a.volumes.putFile('s', '/x', bytes(Buffer.from('x')))
  await converged([a, b], 's', tr => tr.length === 1)
  const info = await waitFor(async () => {
    const i = await b.volumeInfo('s') as any
    const m = i.memberStates.find((x: any) => x.peerId === a.peerId)
    return m.watermark === m.seq && m.seq > 0 ? i : undefined
  })
  const ma = info.memberStates.find((x: any) => x.peerId === a.peerId)
  t.true(ma.connected)
  t.false(ma.self)
  t.deepEqual(info.lacking, { files: 0, bytes: 0, refused: null })
  const self = info.memberStates.find((x: any) => x.self)
  t.is(self.peerId, b.peerId)
  t.deepEqual(await paths(b, 's'), ['/x'])
  t.true(Array.isArray((await a.status()).peers))
})

