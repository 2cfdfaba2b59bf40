import '../core/polyfill.js'
import test from 'ava'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from '@libp2p/interface'
import { sha256 } from '../store/chunk-store.js'
import { YoungChunks } from '../store/young-chunks.js'
import { Store } from '../store/store.js'
import { RECORD_VERSION, type VolumeRecord } from '../core/records.js'
import { Notices, type NoticeDeps } from '../replication/notices.js'
import { RemoteViews } from '../replication/remote-views.js'
import { PeerManager } from '../replication/peer-manager.js'
import { tmpDir, startNode, httpRequest } from './helpers.js'

const hashes = (n: number, from = 0): Uint8Array[] => Array.from({ length: n }, (_, i) => sha256(Buffer.from(`c${from + i}`)))

test('young chunks age out once past their window, and their number is capped', t => {
  let now = 1_000_000
  const young = new YoungChunks({ retainMs: 600_000, max: 1000, now: () => now })
  young.onPut(hashes(500).map(hash => ({ hash })))
  young.touch(hashes(100, 500))
  t.is(young.size, 600)
  now += 600_001
  // No gc ran: the next write alone lets the old entries go.
  young.touch(hashes(1, 10_000))
  t.is(young.size, 1)
  young.onPut(hashes(5000, 20_000).map(hash => ({ hash })))
  t.is(young.size, 1000, 'capped: the oldest go first')
  t.true(young.has(Buffer.from(hashes(1, 24_999)[0]).toString('hex')))
  t.false(young.has(Buffer.from(hashes(1, 20_000)[0]).toString('hex')))
})

test('notices from a peer that is no member of a volume of that id here are not kept', async t => {
  const vol = { name: 'v', id: 'id-v', members: ['me', 'member'], state: 'steady' } as unknown as VolumeRecord
  const remotes = new RemoteViews()
  const pulled: string[] = []
  const deps = {
    store: { getVolume: async (name: string) => await Promise.resolve(name === 'v' ? vol : undefined) },
    remotes, selfId: 'me', stopped: () => false, states: { offline: new Set() },
    pull: (v: string, p: string) => { pulled.push(`${v} ${p}`) }
  } as unknown as NoticeDeps
  const notices = new Notices(deps)
  for (let i = 0; i < 1000; i++) notices.received(`stranger-${i}`, { volume: `vol-${i}`, volumeId: 'x', seq: i, state: 'steady', generation: 1 })
  notices.received('stranger', { volume: 'v', volumeId: 'id-v', seq: 5, state: 'steady' })
  notices.received('member', { volume: 'v', volumeId: 'other-id', seq: 5, state: 'steady' })
  notices.received('member', { volume: 'v', volumeId: 'id-v', seq: 7, state: 'steady', generation: 1 })
  await new Promise(resolve => setTimeout(resolve, 50))
  t.is(remotes.size, 2, 'only the member\'s state and head')
  t.is(remotes.headOf('v', 'member'), 7)
  t.deepEqual(pulled, ['v member'])
})

test('the peer manager keeps and redials only peers that matter; strangers are never stored, and held in memory capped', async t => {
  const dir = await tmpDir(t)
  const store = await Store.open(dir)
  t.teardown(async () => { await store.close() })
  const ids = await Promise.all(Array.from({ length: 40 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
  const [self, member, joined, old, ...strangers] = ids
  const vol: VolumeRecord = {
    v: RECORD_VERSION, name: 'v', id: 'a'.repeat(32), generation: 1, members: [self, member].sort(), writeMode: 'active', chunkSize: 65536,
    createdAt: 0, seq: 0, dirty: false
  }
  await store.createVolume(vol)
  const now = Date.now()
  await store.putPeer({ peerId: member, addrs: ['/ip4/127.0.0.1/tcp/1'], lastSeen: now - 10 * 86_400_000 })
  await store.putPeer({ peerId: old, addrs: ['/ip4/127.0.0.1/tcp/2'], lastSeen: now - 2 * 3_600_000 })
  for (const [i, s] of strangers.entries()) await store.putPeer({ peerId: s, addrs: ['/ip4/127.0.0.1/tcp/3'], lastSeen: now - i * 1000 })
  await store.putMeta('joinedPeers', [joined])
  await store.putPeer({ peerId: joined, addrs: ['/ip4/127.0.0.1/tcp/4'], lastSeen: 0 })

  const dialled: string[] = []
  const libp2p = {
    peerId: { toString: () => self },
    getConnections: () => [],
    addEventListener: () => {},
    peerStore: { merge: async () => {}, patch: async () => {}, delete: async () => {}, all: async () => await Promise.resolve([]) },
    // Redials name the kept addresses (each ending in /p2p/<peer>).
    dial: async (addrs: Array<{ toString: () => string }>) => { dialled.push(addrs[0].toString().split('/p2p/')[1]); return await Promise.reject(new Error('unreachable')) }
  } as unknown as Libp2p
  const pm = new PeerManager(libp2p, store)
  pm.limits = { strangerTtlMs: 3_600_000, maxStrangers: 10 }
  await pm.start([])
  pm.stop()
  await (pm as unknown as { tick: () => Promise<void> }).tick()
  const kept = new Set((await store.listPeers()).map(p => p.peerId))
  t.true(kept.has(member), 'a member is kept however long ago it was seen')
  t.true(kept.has(joined), 'a joined peer is kept')
  t.false(kept.has(old), 'a stranger an older version stored is forgotten')
  t.is(kept.size, 2, 'no stranger stays in the store')
  t.is(pm.knownPeers, 2)
  t.deepEqual(dialled.sort(), [member, joined].sort(), 'only members and joined peers are redialled')
  // Strangers that identify are held in memory only, at most maxStrangers of them.
  const remember = (pm as unknown as { remember: (id: unknown, addrs: unknown[]) => Promise<void> }).remember.bind(pm)
  for (const s of strangers) await remember(peerIdFromString(s), [multiaddr('/ip4/127.0.0.1/tcp/5')])
  t.is(pm.strangersSeen, 10)
  t.true(pm.recentlySeen(strangers.at(-1)!) && !pm.recentlySeen(strangers[0]), 'the most recently seen stay')
  t.is((await store.listPeers()).length, 2)
})

test('status shows the sizes of what the node holds in memory', async t => {
  const node = await startNode(t)
  await httpRequest(node.apiUrl!, { method: 'POST', path: '/v1/volumes', body: JSON.stringify({ name: 'v' }), headers: { 'content-type': 'application/json' } })
  await httpRequest(node.apiUrl!, { method: 'PUT', path: '/v1/volumes/v/files/f', body: Buffer.alloc(1000, 1) })
  const status = (await httpRequest(node.apiUrl!, { path: '/v1/status' })).json()
  t.deepEqual(Object.keys(status.memory).sort(), ['bannedPeers', 'knownPeers', 'limitedPeers', 'notices', 'strangers', 'youngChunks'])
  t.deepEqual(status.throttledPeers, [])
  t.is(status.memory.youngChunks, 1)
  t.is(status.memory.notices, 0)
})
