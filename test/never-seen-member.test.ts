import '../core/polyfill.js'
import test from 'ava'
import { startNode, waitFor, runCli, tmpDir } from './helpers.js'
import { bytes } from './replication-helpers.js'

/** `id` with one character changed (still a well-formed peer id, of no running node). */
function typo (id: string): string {
  const i = id.length - 3
  return id.slice(0, i) + (id[i] === 'a' ? 'b' : 'a') + id.slice(i + 1)
}

test('a member that never connects is shown neverSeen after --never-seen-after and stops holding back log compaction', async t => {
  const a = await startNode(t, { neverSeenAfterMs: 1500 })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'ns', replicas: [b.peerId] })
  for (let i = 0; i < 4; i++) await a.volumes.putFile('ns', `/f${i}`, bytes(Buffer.from(`file ${i}`)))
  await a.volumes.removeFile('ns', '/f0')
  await a.volumes.removeFile('ns', '/f1')
  const deletes = (await a.store.requireVolume('ns')).seq
  // b confirms what it applied with the `since` of its next pull: one more write brings it.
  await a.volumes.putFile('ns', '/after', bytes(Buffer.from('after')))
  await waitFor(async () => ((await a.store.listApplied('ns'))[b.peerId] ?? 0) >= deletes ? true : undefined, 100)

  const ghost = typo(b.peerId)
  await a.addReplica('ns', ghost, { force: true })
  const early = await a.compactLog('ns')
  t.is(early.purged, 0, 'a member just added holds the safe point at first')
  t.deepEqual(early.neverSeen, [])
  const info = await waitFor(async () => {
    const v = await a.volumeInfo('ns')
    return v.memberStates.find(m => m.peerId === ghost)?.neverSeen === true ? v : undefined
  }, 100)
  t.false(info.memberStates.find(m => m.peerId === b.peerId)!.neverSeen, 'a member that connected is not never seen')
  t.false(info.memberStates.find(m => m.self)!.neverSeen)
  const late = await a.compactLog('ns')
  t.is(late.purged, 2, 'the two tombstones b applied are purged; the never-seen member no longer holds them')
  t.deepEqual(late.neverSeen, [ghost])
  const status = await runCli(['status'], { dataDir: a.dataDir })
  t.regex(status.stdout, new RegExp(`${ghost}  never seen`))
})

test('start --never-seen-after refuses a duration it cannot read', async t => {
  const dir = await tmpDir(t)
  const r = await runCli(['start', '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0', '--never-seen-after', 'soon'], { dataDir: dir })
  t.not(r.code, 0)
  t.regex(r.stderr, /--never-seen-after takes a duration/)
})
