import '../core/polyfill.js'
import test from 'ava'
import type { ExecutionContext } from 'ava'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from '@libp2p/interface'
import { createReplicantLibp2p } from '../node/libp2p.js'
import { fetchIndexPage } from '../protocols/index-protocol.js'
import { wantChunks } from '../protocols/chunk-protocol.js'
import { sendCommit, askStatus } from '../protocols/write-protocol.js'
import { requestEnsureVolume, requestMemberState, requestPrepareGeneration, descriptorOf } from '../protocols/control-protocol.js'
import { startNode } from './helpers.js'
import { bytes } from './replication-helpers.js'

/** A stock libp2p peer that no operator added to anything. */
async function stranger (t: ExecutionContext): Promise<Libp2p> {
  const node = await createReplicantLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
  t.teardown(async () => { await node.stop() })
  return node
}

async function answer (p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    return `${(err as { code?: string }).code ?? '?'}: ${(err as Error).message}`
  }
}

async function drain (it: AsyncIterable<unknown>): Promise<number> {
  let n = 0
  for await (const item of it) if (item !== undefined) n++
  return n
}

test('a stranger asking about an existing and a non-existing volume over every protocol gets identical answers, with no id or generation', async t => {
  const a = await startNode(t, { api: false })
  const vol = await a.createVolume({ name: 'real' })
  await a.volumes.putFile('real', '/f', bytes(Buffer.from('secret')))
  const intruder = await stranger(t)
  const me = intruder.peerId.toString()
  await intruder.dial(multiaddr(a.multiaddrs()[0]))
  const target = peerIdFromString(a.peerId)
  const guess = 'f'.repeat(32)
  // The stranger does not know the id: it guesses one, for both names.
  const asks: Record<string, (name: string) => Promise<unknown>> = {
    'ensure-volume': async name => await requestEnsureVolume(intruder, target, { ...descriptorOf({ ...vol, name, id: guess }), members: [me], generation: 1000 }),
    'prepare-generation': async name => { await requestPrepareGeneration(intruder, target, { ...descriptorOf({ ...vol, name, id: guess }), members: [me, a.peerId].sort(), generation: 1000 }, false) },
    state: async name => await requestMemberState(intruder, target, name, guess),
    index: async name => await fetchIndexPage(intruder, target, { volume: name, volumeId: guess, since: 0 }),
    chunks: async name => { await drain(wantChunks(intruder, target, { volume: name, volumeId: guess, hashes: [new Uint8Array(32)] }, 1 << 20)) },
    'write commit': async name => { await sendCommit(intruder, target, { volume: name, volumeId: guess, txId: 'x'.repeat(16) }, AbortSignal.timeout(5000)) },
    'write status': async name => await askStatus(intruder, target, { volume: name, volumeId: guess, txId: 'x'.repeat(16) }, AbortSignal.timeout(5000))
  }
  for (const [what, ask] of Object.entries(asks)) {
    const existing = await answer(ask('real'))
    const missing = await answer(ask('none'))
    t.not(existing, 'ok', `${what}: refused`)
    t.is(existing.replace(/\breal\b/g, 'NAME'), missing.replace(/\bnone\b/g, 'NAME'), `${what}: the same answer whether the volume exists or not`)
    t.false(existing.includes(vol.id), `${what}: no volume id`)
    t.false(/generation \d/.test(existing), `${what}: no generation`)
  }
  t.is((await a.store.requireVolume('real')).generation, vol.generation, 'nothing adopted')
  t.is(await a.store.getVolume('none'), undefined, 'nothing created')
})
