import '../core/polyfill.js'
import test from 'ava'
import { randomBytes, createHash } from 'node:crypto'
import { startNode, waitFor, runCli, randomSource } from './helpers.js'
import { converged, bytes, read } from './replication-helpers.js'

test('volume move under continuous writes: the target ends holding everything, nothing lost, the source removed', async t => {
  t.timeout(180_000)
  const a = await startNode(t)
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const c = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'mv', replicas: [b.peerId] })
  for (let i = 0; i < 3; i++) await a.volumes.putFile('mv', `/base${i}`, randomSource(8 * 1024 * 1024).source)
  await converged([a, b], 'mv', tr => tr.length === 3)
  // Writes go on through b for the whole move.
  const acked = new Map<string, string>()
  let stop = false
  const writer = (async () => {
    for (let i = 0; !stop; i++) {
      const data = randomBytes(5000 + i)
      await b.volumes.putFile('mv', `/live/${i}`, bytes(data))
      acked.set(`/live/${i}`, createHash('sha256').update(data).digest('hex'))
      await new Promise(resolve => setTimeout(resolve, 2))
    }
  })()
  const phases: string[] = []
  const started = Date.now()
  let lastSeen = ''
  const result = await a.moveVolume('mv', a.peerId, c.peerId, {
    onProgress: p => {
      if (phases.at(-1) !== p.phase) phases.push(p.phase)
      // What the move waited on, when it changed: a slow run shows where the time went.
      const seen = `${p.phase as string} ${(p.state) ?? ''} ${JSON.stringify(p.progress ?? null)}`
      if (seen !== lastSeen) { t.log(`${Date.now() - started} ms: ${seen}`); lastSeen = seen }
    }
  })
  stop = true
  await writer
  t.deepEqual(phases, ['adding', 'copying', 'removing', 'done'])
  t.deepEqual([...(result.members)].sort(), [b.peerId, c.peerId].sort())
  t.is((await c.store.requireVolume('mv')).state, 'steady')
  const final = await converged([b, c], 'mv', tr => tr.length === 3 + acked.size)
  t.is(final.length, 3 + acked.size)
  for (const [p, hex] of [...acked].slice(-3)) t.is(createHash('sha256').update(await read(c, 'mv', p)).digest('hex'), hex)
  await waitFor(async () => (await a.store.requireVolume('mv')).state === 'removed' ? true : undefined)
})

test('an interrupted move can be abandoned (volume intact on the source) or resumed', async t => {
  t.timeout(120_000)
  const a = await startNode(t)
  const c = await startNode(t, { api: false, join: [a.multiaddrs()[0]], copyConcurrency: 0 })
  await a.createVolume({ name: 'mi' })
  await a.volumes.putFile('mi', '/f', bytes(randomBytes(300_000)))
  // c never finishes its copy (no background copy): the move waits, and is interrupted.
  const controller = new AbortController()
  const running = a.moveVolume('mi', a.peerId, c.peerId, { signal: controller.signal })
  await waitFor(async () => (await a.store.requireVolume('mi')).members.includes(c.peerId) ? true : undefined)
  controller.abort()
  await t.throwsAsync(running)
  t.true((await a.store.requireVolume('mi')).members.includes(a.peerId), 'the source is still a member')
  // Abandon, through the CLI: c is removed, a holds the volume as before.
  const ab = await runCli(['volume', 'move', 'mi', '--from', a.peerId, '--to', c.peerId, '--abandon'], { dataDir: a.dataDir })
  t.is(ab.code, 0, ab.stderr)
  t.regex(ab.stdout, /move abandoned/)
  t.deepEqual((await a.store.requireVolume('mi')).members, [a.peerId])
  t.is((await read(a, 'mi', '/f')).byteLength, 300_000)
  // Resume (a fresh move to a node that can copy) completes.
  const d = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const mv = await runCli(['volume', 'move', 'mi', '--from', a.peerId, '--to', d.peerId], { dataDir: a.dataDir })
  t.is(mv.code, 0, mv.stderr)
  t.regex(mv.stdout, /move done; members /)
  // Each member's answer to the removal, as remove-replica prints it.
  t.true(mv.stdout.includes(`member ${d.peerId}: `), mv.stdout)
  t.is((await read(d, 'mi', '/f')).byteLength, 300_000)
})
