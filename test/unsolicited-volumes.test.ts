import '../core/polyfill.js'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from '@libp2p/interface'
import { createReplicantLibp2p } from '../node/libp2p.js'
import { requestEnsureVolume, descriptorOf } from '../protocols/control-protocol.js'
import { startNode, waitFor, runCli } from './helpers.js'

async function stranger (t: ExecutionContext): Promise<Libp2p> {
  const node = await createReplicantLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  t.teardown(async () => { await node.stop() })
  return node
}

async function failure (p: Promise<unknown>): Promise<{ code?: string, message: string } | undefined> {
  try { await p } catch (err) { return { code: (err as { code?: string }).code, message: (err as Error).message } }
  return undefined
}

test('a stranger cannot create a volume (default --accept-volumes known): refused, nothing created, logged and listed in status; the same answer for a name held here', async t => {
  const reports: string[] = []
  const a = await startNode(t, { report: l => { reports.push(l) } })
  const held = await a.createVolume({ name: 'held' })
  const intruder = await stranger(t)
  const me = intruder.peerId.toString()
  await intruder.dial(multiaddr(a.multiaddrs()[0]))
  const forged = (name: string): ReturnType<typeof descriptorOf> => ({ ...descriptorOf({ ...held, name, id: 'e'.repeat(32) }), members: [a.peerId, me].sort() })
  const fresh = await failure(requestEnsureVolume(intruder, peerIdFromString(a.peerId), forged('filler')))
  t.is(fresh?.code, 'VOLUME_REFUSED')
  t.regex(fresh!.message, /volume accept filler --from/)
  t.is(await a.store.getVolume('filler'), undefined, 'nothing created')
  const existing = await failure(requestEnsureVolume(intruder, peerIdFromString(a.peerId), forged('held')))
  t.is(existing?.code, fresh?.code)
  t.is(existing!.message.replace('held', 'NAME'), fresh!.message.replace('filler', 'NAME'), 'a held name is answered as a new one')
  t.false(existing!.message.includes(held.id))
  const status = await a.status()
  t.true(status.volumeRefusals!.some(r => r.volume === 'filler' && r.from === me), JSON.stringify(status.volumeRefusals))
  t.true(reports.some(l => l.includes('filler') && l.includes(me)), 'reported at the default level')
  const cli = await runCli(['status'], { dataDir: a.dataDir })
  t.regex(cli.stdout, new RegExp(`refused new volume filler from ${me}`))
})

test('add-replica onto a node that does not know the proposer fails naming `volume accept`; after it, the retried add works', async t => {
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'v', replicas: [b.peerId] })
  await waitFor(async () => await b.store.getVolume('v'))
  // c connects to a (so a has seen it) but its operator introduced no one: it knows nothing of a.
  const c = await startNode(t)
  await c.libp2p.dial(multiaddr(a.multiaddrs()[0]))
  const gen = (await a.store.requireVolume('v')).generation
  const err = await failure(a.addReplica('v', c.peerId))
  t.is(err?.code, 'VOLUME_REFUSED')
  t.true(err!.message.includes(`replicant volume accept v --from ${a.peerId}`), err!.message)
  t.is((await a.store.requireVolume('v')).generation, gen, 'nothing committed')
  t.is(await c.store.getVolume('v'), undefined)
  const accept = await runCli(['volume', 'accept', 'v', '--from', a.peerId], { dataDir: c.dataDir })
  t.is(accept.code, 0, accept.stderr)
  const added = await a.addReplica('v', c.peerId)
  t.true(added.members.includes(c.peerId))
  await waitFor(async () => await c.store.getVolume('v'))
})

test('a node joined to one member takes a volume from another member that the first vouches for', async t => {
  const a = await startNode(t, { api: false })
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'w', replicas: [b.peerId] })
  await waitFor(async () => await b.store.getVolume('w'))
  const c = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  const added = await b.addReplica('w', c.peerId)
  t.true(added.members.includes(c.peerId))
  await waitFor(async () => await c.store.getVolume('w'))
  // A made-up volume listing a is not vouched for: a holds no such volume.
  const intruder = await stranger(t)
  await intruder.dial(multiaddr(c.multiaddrs()[0]))
  const forged = { ...descriptorOf(await b.store.requireVolume('w')), name: 'made-up', id: 'd'.repeat(32), members: [a.peerId, c.peerId, intruder.peerId.toString()].sort() }
  t.is((await failure(requestEnsureVolume(intruder, peerIdFromString(c.peerId), forged)))?.code, 'VOLUME_REFUSED')
  t.is(await c.store.getVolume('made-up'), undefined)
})

test('--accept-volumes none refuses even a joined peer until approved; all takes a stranger\'s volume (the old behaviour)', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'n' })
  const c = await startNode(t, { api: false, join: [a.multiaddrs()[0]], acceptVolumes: 'none' })
  t.is((await failure(a.addReplica('n', c.peerId)))?.code, 'VOLUME_REFUSED')
  await c.acceptVolume('n', a.peerId)
  await a.addReplica('n', c.peerId)
  await waitFor(async () => await c.store.getVolume('n'))
  // The approval was used up: another volume from a is refused again.
  await a.createVolume({ name: 'n2' })
  t.is((await failure(a.addReplica('n2', c.peerId)))?.code, 'VOLUME_REFUSED')

  const open = await startNode(t, { api: false, acceptVolumes: 'all' })
  const intruder = await stranger(t)
  await intruder.dial(multiaddr(open.multiaddrs()[0]))
  const desc = { ...descriptorOf((await a.store.requireVolume('n2'))), name: 'anything', members: [open.peerId, intruder.peerId.toString()].sort() }
  const r = await requestEnsureVolume(intruder, peerIdFromString(open.peerId), desc)
  t.true(r.created)
})
