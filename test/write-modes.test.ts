import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { startNode, waitFor, sleep, spawnNodeProcess, tmpDir, clientOf } from './helpers.js'
import { converged, bytes, read, paths } from './replication-helpers.js'

test('all mode on 3 members: a write is visible on every member when it returns', async t => {
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const c = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'acid', replicas: [b.peerId, c.peerId], writeMode: 'all' })
  await waitFor(async () => (await b.store.getVolume('acid')) !== undefined && (await c.store.getVolume('acid')) !== undefined ? true : undefined)
  const data = randomBytes(300_000)
  await b.volumes.putFile('acid', '/doc', bytes(data))
  // No waiting: acknowledged means stored and visible on every member.
  for (const n of [a, b, c]) t.deepEqual(await read(n, 'acid', '/doc'), data)
  await c.volumes.removeFile('acid', '/doc')
  for (const n of [a, b, c]) t.deepEqual(await paths(n, 'acid'), [])
  t.is((await a.volumeInfo('acid') as any).writeMode, 'all')
})

test('all mode with a member stopped: the write fails naming it, and no member ever shows it', async t => {
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const c = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'acid2', replicas: [b.peerId, c.peerId], writeMode: 'all' })
  await a.volumes.putFile('acid2', '/before', bytes(Buffer.from('before')))
  await converged([a, b, c], 'acid2', tr => tr.length === 1)
  const cDir = c.dataDir
  await c.stop()
  await waitFor(() => !a.peers.isConnected(c.peerId) ? true : undefined)
  const err = await t.throwsAsync(a.volumes.putFile('acid2', '/during', bytes(Buffer.from('not acknowledged'))))
  t.is((err as any).code, 'WRITE_NOT_ACKNOWLEDGED')
  t.true(err.message.includes(c.peerId), err.message)
  for (const n of [a, b]) t.deepEqual(await paths(n, 'acid2'), ['/before'])
  const c2 = await startNode(t, { api: false, dataDir: cDir })
  await converged([a, b, c2], 'acid2')
  await sleep(1000)
  for (const n of [a, b, c2]) t.deepEqual(await paths(n, 'acid2'), ['/before'], 'nobody shows the rolled-back write')
  // With every member back, writes go through again.
  await a.volumes.putFile('acid2', '/after', bytes(Buffer.from('after')))
  for (const n of [a, b, c2]) t.is((await read(n, 'acid2', '/after')).toString(), 'after')
})

for (const fault of ['crash-after-prepare', 'crash-after-decision'] as const) {
  test(`all mode, kill -9 of the coordinator (${fault}): after recovery every member agrees`, async t => {
    t.timeout(180_000)
    const dir = await tmpDir(t)
    const expiry = ['--prepared-expiry', '2']
    const n2 = await spawnNodeProcess(t, `${dir}/n2`, expiry)
    const ma2 = /listening: (\S+)/.exec(n2.stdout())![1]
    const n3 = await spawnNodeProcess(t, `${dir}/n3`, [...expiry, '--join', ma2])
    const c2 = clientOf(n2)
    const c3 = clientOf(n3)
    // The coordinator: a process that kills itself at the fault point (spawnNodeProcess starts
    // it with --testing, without which REPLICANT_FAULTS is ignored).
    process.env.REPLICANT_FAULTS = fault
    let n1
    try {
      n1 = await spawnNodeProcess(t, `${dir}/n1`, [...expiry, '--join', ma2])
    } finally {
      delete process.env.REPLICANT_FAULTS
    }
    const c1 = clientOf(n1)
    // Created on n2, which n1 and n3 joined (--accept-volumes known); n1 coordinates the write.
    await c2.createVolume({ name: 'tx', replicas: [n1.peerId, n3.peerId], writeMode: 'all' })
    await waitFor(async () => (await c1.volumeInfo('tx').catch(() => undefined)) !== undefined && (await c3.volumeInfo('tx').catch(() => undefined)) !== undefined ? true : undefined, 100)
    await waitFor(async () => {
      const i = await c1.volumeInfo('tx')
      return i.memberStates.every((m: any) => m.connected) ? true : undefined
    }, 100)
    const data = randomBytes(100_000)
    await t.throwsAsync(c1.put('tx', '/x', Readable.from([data]), { size: data.byteLength }))
    const exited = await n1.exited
    t.is(exited.signal, 'SIGKILL')
    // The members keep their prepared write in doubt while nobody knows the decision ...
    await sleep(3500)
    const n1b = await spawnNodeProcess(t, `${dir}/n1`, expiry)
    const c1b = clientOf(n1b)
    // ... and once the coordinator is back (it aborts its own undecided write, or tells its
    // commit), all agree.
    const expected = fault === 'crash-after-prepare' ? [] : ['/x']
    for (const c of [c1b, c2, c3]) {
      const files = await waitFor(async () => {
        const { files } = await c.list('tx')
        const ps = files.map((f: any) => f.path)
        return JSON.stringify(ps) === JSON.stringify(expected) ? ps : undefined
      }, 100)
      t.deepEqual(files, expected)
    }
    if (fault === 'crash-after-decision') {
      const chunks: Buffer[] = []
      for await (const p of await c3.open('tx', '/x')) chunks.push(p as Buffer)
      t.deepEqual(Buffer.concat(chunks), data)
    }
    await Promise.all([n1b.kill(), n2.kill(), n3.kill()])
  })
}

test('active mode: a member that cannot fetch an update marks it, never serves the stale bytes, and repairs itself', async t => {
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'ac', replicas: [b.peerId] })
  await a.volumes.putFile('ac', '/f', bytes(Buffer.from('version 1')))
  await converged([a, b], 'ac', tr => tr.length === 1)
  // a now serves corrupt chunks: b cannot apply the next update.
  a.faults.serveCorruptChunks = true
  const v2 = randomBytes(200_000)
  await a.volumes.putFile('ac', '/f', bytes(v2))
  const info = await waitFor(async () => {
    const i = await b.volumeInfo('ac') as any
    return i.repairing === true ? i : undefined
  })
  t.true(info.repairing)
  // b knows a newer version exists: it refuses to serve version 1 as current.
  const err = await t.throwsAsync(read(b, 'ac', '/f'))
  t.regex((err as any).code, /CHUNK_MISSING|TIMEOUT/)
  t.true(b.sync.fetcher.counters.badChunks > 0, 'the corrupt chunks were rejected')
  // The source heals: b repairs by itself and ends identical.
  a.faults.serveCorruptChunks = false
  // A repair round still under way may have counted more bad chunks and shunned a again:
  // the operator forgives until the repair is through.
  await waitFor(async () => {
    b.sync.fetcher.forgive(a.peerId)
    return (await b.volumeInfo('ac') as any).repairing === false ? true : undefined
  }, 100)
  t.deepEqual(await read(b, 'ac', '/f'), v2)
  await converged([a, b], 'ac', tr => tr.length === 1)
})

test('the write mode can be changed later and every member follows', async t => {
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'wm', replicas: [b.peerId] })
  await waitFor(async () => (await b.store.getVolume('wm')) !== undefined ? true : undefined)
  const r = await a.setWriteMode('wm', 'all') as any
  t.is(r.writeMode, 'all')
  await waitFor(async () => (await b.store.getVolume('wm'))?.writeMode === 'all' ? true : undefined)
  await t.throwsAsync(a.setWriteMode('wm', 'sometimes'), { message: /all or active/ })
})
