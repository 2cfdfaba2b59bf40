import '../core/polyfill.js'
import test from 'ava'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { Level } from 'level'
import { Store, type NewFileRecord } from '../store/store.js'
import { RECORD_VERSION, type VolumeRecord } from '../core/records.js'
import { hashHex } from '../core/hash.js'
import { tmpDir } from './helpers.js'

const CHUNK = 4096

function volumeRecord (name: string): VolumeRecord {
  return {
    v: RECORD_VERSION, name, id: createHash('md5').update(name).digest('hex'), generation: 1, members: ['peer-a'],
    writeMode: 'active', chunkSize: CHUNK, createdAt: 1_700_000_000_000, seq: 0, dirty: false
  }
}

/** A real chunk (stored), so GC has something to reclaim or keep. */
async function chunk (store: Store): Promise<Uint8Array> {
  const bytes = randomBytes(CHUNK)
  const hash = createHash('sha256').update(bytes).digest()
  await store.chunks.putMany([{ hash, bytes }])
  return hash
}

function fileRecord (path: string, hashes: Uint8Array[], n = 1): NewFileRecord {
  return {
    v: RECORD_VERSION, path, size: hashes.length * CHUNK, mode: 0o644, mtime: 1_700_000_000_000, chunkSize: CHUNK,
    chunks: new Uint8Array(Buffer.concat(hashes)), vv: { 'peer-a': n }, deleted: false
  }
}

async function held (store: Store): Promise<Set<string>> {
  const out = new Set<string>()
  for await (const k of store.chunks.keys()) out.add(hashHex(k))
  return out
}

test('deleteVolume deletes the whole replica: snapshots, kept versions, prepared writes, tx log, marks and references; GC reclaims its chunks', async t => {
  const dir = await tmpDir(t)
  let store = await Store.open(dir)
  t.teardown(async () => { await store.close() })
  await store.createVolume(volumeRecord('doomed'))
  await store.createVolume(volumeRecord('keeper'))
  const [shared, a, b, c, p, k] = [await chunk(store), await chunk(store), await chunk(store), await chunk(store), await chunk(store), await chunk(store)]
  await store.commitFiles('doomed', (ctx) => {
    ctx.setWatermark('peer-b', 7)
    return Promise.resolve([fileRecord('/a', [a, shared]), fileRecord('/b', [b])])
  })
  await store.commitFiles('keeper', () => Promise.resolve([fileRecord('/k', [k, shared])]))
  await store.createSnapshot('doomed', 'monday')
  // /b overwritten after the snapshot: its first version is kept for the snapshot (copy-on-write).
  await store.commitFiles('doomed', () => Promise.resolve([fileRecord('/b', [c], 2)]))
  t.is(store.counters.versionsSaved, 1)
  await store.putPrepared({ txId: 'tx-open', volume: 'doomed', coordinator: 'peer-b', record: fileRecord('/p', [p]), at: Date.now() })
  await store.recordAbort('doomed', 'tx-aborted')
  await store.noteApplied('doomed', 'peer-b', 3)

  const gone = await store.deleteVolume('doomed')
  t.like(gone, { files: 2, bytes: 3 * CHUNK })
  t.is(await store.getVolume('doomed'), undefined)
  t.deepEqual(await store.listPrepared('doomed'), [])
  t.is(await store.txState('doomed', 'tx-aborted'), undefined)
  t.deepEqual(await store.listWatermarks('doomed'), {})
  t.deepEqual(await store.listApplied('doomed'), {})
  t.is(await store.refCount(b), 0, 'the kept version of /b no longer references its chunk')
  t.is(await store.refCount(shared), 1, 'the other volume still references the shared chunk')

  const r = await store.collectGarbage({ youngMs: 0 })
  const after = await held(store)
  t.is(r.deleted, 4, 'a, b (kept version), c and p (prepared) are reclaimed')
  for (const x of [a, b, c, p]) t.false(after.has(hashHex(x)))
  for (const x of [shared, k]) t.true(after.has(hashHex(x)))

  // A volume created again under the name inherits nothing: no snapshot, no copy-on-write.
  await store.createVolume(volumeRecord('doomed'))
  t.deepEqual(await store.listSnapshots('doomed'), [])
  await store.commitFiles('doomed', () => Promise.resolve([fileRecord('/b', [k])]))
  await store.commitFiles('doomed', () => Promise.resolve([fileRecord('/b', [shared], 2)]))
  t.is(store.counters.versionsSaved, 1, 'no snapshot horizon left over: nothing kept')
  await store.deleteVolume('doomed')
  await store.close()

  // Nothing of the volume is left in any sublevel (refs keys end with the name, others start with it).
  const db = new Level<Buffer, Buffer>(join(dir, 'store'), { keyEncoding: 'buffer', valueEncoding: 'buffer' })
  const left: string[] = []
  for await (const key of db.keys()) if (key.includes('doomed')) left.push(key.toString('latin1'))
  await db.close()
  t.deepEqual(left, [])
  store = await Store.open(dir)
  t.deepEqual((await store.listVolumes()).map(v => v.name), ['keeper'])
})
