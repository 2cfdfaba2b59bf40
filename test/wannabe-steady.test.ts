import '../core/polyfill.js'
import test from 'ava'
import { startNode, waitFor, randomSource, sha256Stream } from './helpers.js'
import { chunkHashes, type FileRecord } from '../core/records.js'
import type { ReplicantNode } from '../node/replicant-node.js'

const MiB = 1024 * 1024

async function stateOf (node: ReplicantNode, volume: string): Promise<string | undefined> {
  return (await node.store.getVolume(volume))?.state ?? (await node.store.getVolume(volume) !== undefined ? 'steady' : undefined)
}

async function digest (node: ReplicantNode, volume: string, path: string): Promise<string> {
  const rec = await node.volumes.stat(volume, path)
  return (await sha256Stream(node.volumes.readFile(volume, rec))).hex
}

test('a copy pass that counted the index before the pull committed it does not go steady on that count', async t => {
  t.timeout(120_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'race' })
  const src = randomSource(4 * MiB)
  const rec = await a.volumes.putFile('race', '/data', src.source)
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  // The ordering that made a wannabe steady without its chunks: the background copy's first
  // count reads the (still empty) index, then the full pull commits /data and marks the index
  // caught up, then the count ends. The real store is read; only the count's end is held back.
  const listFiles = b.store.listFiles.bind(b.store)
  let held = false
  b.store.listFiles = (vol: string, prefix?: string, options?: { signal?: AbortSignal }): AsyncGenerator<FileRecord> => {
    if (vol !== 'race' || held) return listFiles(vol, prefix, options)
    held = true
    return (async function * () {
      const seen: FileRecord[] = []
      for await (const r of listFiles(vol, prefix, options)) seen.push(r)
      await waitFor(() => b.sync.states.isCaughtUp('race') ? true : undefined, 5)
      yield * seen
    })()
  }
  await a.sync.addReplica('race', b.peerId)
  await waitFor(async () => await stateOf(b, 'race') === 'steady' ? true : undefined, 10)
  t.true(held, 'the count was held back')
  t.true((await b.store.chunks.hasMany([...chunkHashes(rec)])).every(Boolean), 'steady means every chunk is held')
})

test('a wannabe does not go steady on the index of a member that has not caught up itself', async t => {
  t.timeout(120_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'chain' })
  const src = randomSource(2 * MiB)
  await a.volumes.putFile('chain', '/data', src.source)
  const b = await startNode(t, { api: false, join: [a.multiaddrs()[0]] })
  // Every index page and chunk a sends b is lost: b becomes a wannabe that holds no index yet.
  a.links.set([b.peerId], { dropRate: 1 })
  await a.sync.addReplica('chain', b.peerId)
  await waitFor(async () => await stateOf(b, 'chain') === 'copy' ? true : undefined)
  const c = await startNode(t, { api: false, join: [b.multiaddrs()[0]] })
  await c.peers.block([a.peerId])
  await a.peers.block([c.peerId])
  await b.sync.addReplica('chain', c.peerId)
  // c has pulled b's (empty) log to its end at least once...
  await waitFor(async () => {
    const vol = await c.store.getVolume('chain')
    if (vol === undefined) return undefined
    return (await c.sync.members(vol)).find(m => m.peerId === b.peerId)?.lastSyncAt != null ? true : undefined
  })
  // ...and a copy pass has run since, yet c is still a wannabe: b's index was not complete.
  await new Promise(resolve => setTimeout(resolve, 500))
  t.is(await stateOf(c, 'chain'), 'copy', 'not steady on an incomplete index')
  a.links.clear()
  await waitFor(async () => await stateOf(c, 'chain') === 'steady' ? true : undefined, 50)
  t.is(await digest(c, 'chain', '/data'), src.digest())
})
