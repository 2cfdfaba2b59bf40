import '../core/polyfill.js'
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { Store, type NewFileRecord } from '../store/store.js'
import { sha256 } from '../store/chunk-store.js'
import { RECORD_VERSION, type VolumeRecord } from '../core/records.js'
import { verifyChunks } from '../replication/chunk-verify.js'
import { tmpDir } from './helpers.js'

const CHUNK = 4096

function fileRecord (path: string, hashes: Uint8Array[], deleted = false): NewFileRecord {
  return {
    v: RECORD_VERSION, path, size: hashes.length * CHUNK, mode: 0o644, mtime: 1_700_000_000_000, chunkSize: CHUNK,
    chunks: new Uint8Array(Buffer.concat(hashes)), vv: { 'peer-a': 1 }, deleted
  }
}

// Issue 17: damaged files, not only chunks. A merge's verification names how many live files
// a dropped chunk damages; a chunk shared by two files damages both, a tombstone none.
test('verifyChunks drops a missing and a corrupt chunk and counts the live files that referenced them', async t => {
  const store = await Store.open(await tmpDir(t))
  t.teardown(async () => { await store.close() })
  const vol: VolumeRecord = {
    v: RECORD_VERSION, name: 'v', id: createHash('md5').update('v').digest('hex'), generation: 1, members: ['peer-a'],
    writeMode: 'active', chunkSize: CHUNK, createdAt: 1_700_000_000_000, seq: 0, dirty: false
  }
  await store.createVolume(vol)
  const chunk = (): { hash: Uint8Array, bytes: Uint8Array } => { const bytes = randomBytes(CHUNK); return { hash: sha256(bytes), bytes } }
  const good = chunk()
  const shared = chunk()
  const other = chunk()
  // `shared` is stored under its hash, `other` never: one corrupt chunk and one missing.
  await store.chunks.putMany([good, { hash: shared.hash, bytes: randomBytes(CHUNK) }])
  await store.chunks.sync()
  await store.commitFiles('v', async () => await Promise.resolve([
    fileRecord('/fine', [good.hash]),
    fileRecord('/a', [good.hash, shared.hash]),
    fileRecord('/b', [shared.hash]),
    fileRecord('/c', [other.hash, good.hash])
  ]))
  const r = await verifyChunks(store, 'v', new AbortController().signal)
  t.deepEqual(r, { checked: 3, dropped: 2, damagedFiles: 3 })
  t.deepEqual(await store.chunks.hasMany([good.hash, shared.hash, other.hash]), [true, false, false], 'the corrupt chunk is dropped, the good one kept')
  // Nothing dropped on a second run: no second pass, nothing damaged.
  await store.commitFiles('v', async () => await Promise.resolve([fileRecord('/a', [good.hash]), fileRecord('/b', [good.hash]), fileRecord('/c', [good.hash])]))
  t.deepEqual(await verifyChunks(store, 'v', new AbortController().signal), { checked: 1, dropped: 0, damagedFiles: 0 })
})
