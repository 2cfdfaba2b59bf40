import '../core/polyfill.js'
import test from 'ava'
import { startNode, runCli, waitFor } from './helpers.js'

/** `id` with one character changed (still a well-formed peer id). */
function typo (id: string): string {
  const i = id.length - 3
  return id.slice(0, i) + (id[i] === 'a' ? 'b' : 'a') + id.slice(i + 1)
}

async function failure (p: Promise<unknown>): Promise<{ code?: string, message: string } | undefined> {
  try { await p } catch (err) { return { code: (err as { code?: string }).code, message: (err as Error).message } }
  return undefined
}

test('add-replica of a one-character typo of a peer id is refused with UNKNOWN_PEER, changes nothing, and is accepted with force', async t => {
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'v', replicas: [b.peerId] })
  const before = await a.store.requireVolume('v')
  const wrong = typo(b.peerId)
  const err = await failure(a.addReplica('v', wrong))
  t.is(err?.code, 'UNKNOWN_PEER')
  t.true(err!.message.includes(wrong), 'the error names the peer')
  t.regex(err!.message, /--force/, 'and says how to override')
  const after = await a.store.requireVolume('v')
  t.is(after.generation, before.generation, 'nothing changed')
  t.deepEqual(after.members, before.members)
  const forced = await a.addReplica('v', wrong, { force: true })
  t.true(forced.members.includes(wrong), 'forced, the never-seen peer is added')
})

test('add-replica of a peer started a moment ago (still connecting, known only to another member) is accepted without force', async t => {
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'j', replicas: [b.peerId] })
  // c joins b only: a has never met it and learns of it by asking b, or when c reaches it.
  const c = await startNode(t, { api: false, join: [b.multiaddrs()[0]] })
  const added = await b.addReplica('j', c.peerId)
  t.true(added.members.includes(c.peerId))
  const viaOther = await startNode(t, { api: false, join: [b.multiaddrs()[0]] })
  const again = await a.addReplica('j', viaOther.peerId)
  t.true(again.members.includes(viaOther.peerId), 'a located it through b')
})

test('CLI: add-replica and move --to a never-seen peer fail naming --force; move --from a non-member fails instead of saying done', async t => {
  const a = await startNode(t)
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'c', replicas: [b.peerId] })
  await waitFor(async () => await b.store.getVolume('c'))
  const wrong = typo(b.peerId)
  const add = await runCli(['volume', 'add-replica', 'c', wrong], { dataDir: a.dataDir })
  t.not(add.code, 0)
  t.regex(add.stderr, /UNKNOWN_PEER/)
  t.true(add.stderr.includes(wrong) && add.stderr.includes('--force'), add.stderr)

  const moveTo = await runCli(['volume', 'move', 'c', '--from', b.peerId, '--to', wrong], { dataDir: a.dataDir })
  t.not(moveTo.code, 0)
  t.regex(moveTo.stderr, /UNKNOWN_PEER/)
  t.notRegex(moveTo.stdout, /move done/)
  t.false((await a.store.requireVolume('c')).members.includes(wrong), 'the move added nothing')

  const moveFrom = await runCli(['volume', 'move', 'c', '--from', wrong, '--to', b.peerId], { dataDir: a.dataDir })
  t.not(moveFrom.code, 0, moveFrom.stdout)
  t.regex(moveFrom.stderr, /MEMBER_NOT_FOUND/)
  t.notRegex(moveFrom.stdout, /move done/)

  const forced = await runCli(['volume', 'add-replica', 'c', wrong, '--force'], { dataDir: a.dataDir })
  t.is(forced.code, 0, forced.stderr)
  t.true((await a.store.requireVolume('c')).members.includes(wrong))
})
