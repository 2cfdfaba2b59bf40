import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { Level } from 'level'
import * as cborg from 'cborg'
import { Store, type NewFileRecord } from '../store/store.js'
import { encode, decode, asFileRecord, asVolumeRecord, asPeerRecord } from '../core/codec.js'
import { RECORD_VERSION, type FileRecord, type VolumeRecord } from '../core/records.js'
import { ReplicantError, type ErrorCode } from '../core/errors.js'
import { httpStatusOf } from '../api/error-status.js'
import { tmpDir, killChildAt } from './helpers.js'

type StoreFactory = (dir: string) => Promise<Store>

const CHUNK = 4096

/** A deterministic 32-byte "chunk hash" for a label. */
const h = (label: string): Uint8Array => createHash('sha256').update(label).digest()

function volumeRecord (name: string, extra: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    v: RECORD_VERSION, name, id: createHash('md5').update(name).digest('hex'), generation: 1, members: ['peer-a'],
    writeMode: 'active', chunkSize: CHUNK, createdAt: 1_700_000_000_000, seq: 0, dirty: false, ...extra
  }
}

/** A file record whose chunks are the given labels (each a full CHUNK bytes). */
function fileRecord (path: string, chunkLabels: string[], extra: Partial<NewFileRecord> = {}): NewFileRecord {
  return {
    v: RECORD_VERSION, path, size: chunkLabels.length * CHUNK, mode: 0o644, mtime: 1_700_000_000_000, chunkSize: CHUNK,
    chunks: new Uint8Array(Buffer.concat(chunkLabels.map(h))), vv: { 'peer-a': 1 }, deleted: false, ...extra
  }
}

function tombstone (path: string): NewFileRecord {
  return fileRecord(path, [], { deleted: true, vv: { 'peer-a': 2 } })
}

async function commit (store: Store, vol: string, ...recs: NewFileRecord[]): Promise<FileRecord[]> {
  return await store.commitFiles(vol, () => Promise.resolve(recs))
}

async function all<T> (it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

async function rejectsWithCode (t: ExecutionContext, p: Promise<unknown>, code: ErrorCode): Promise<ReplicantError | undefined> {
  const err = await t.throwsAsync(p, { instanceOf: ReplicantError })
  t.is(err?.code, code)
  return err
}

/**
 * The store compliance suite: every backend (anything `factory` opens on a directory) must pass
 * it. Reopening calls the factory again on the same directory after close().
 */
function storeCompliance (label: string, factory: StoreFactory): void {
  const open = async (t: ExecutionContext): Promise<{ store: Store, dir: string, reopen: () => Promise<Store> }> => {
    const dir = await tmpDir(t)
    let store = await factory(dir)
    t.teardown(async () => { await store.close() })
    return {
      store,
      dir,
      reopen: async () => {
        await store.close()
        store = await factory(dir)
        return store
      }
    }
  }

  test(`${label}: chunks given in pieces (as they come off the wire) read back whole, after a reopen too`, async t => {
    const { store, reopen } = await open(t)
    const whole = randomBytes(65536)
    const pieces = [whole.subarray(0, 1000), whole.subarray(1000, 65519), whole.subarray(65519)]
    const one = randomBytes(300)
    const hash = createHash('sha256').update(whole).digest()
    const oneHash = createHash('sha256').update(one).digest()
    await store.chunks.putMany([{ hash, bytes: pieces }, { hash: oneHash, bytes: one }])
    await store.chunks.sync()
    t.deepEqual(Buffer.from((await store.chunks.get(hash))!), whole)
    t.deepEqual(Buffer.from((await store.chunks.get(oneHash))!), one)
    const again = await reopen()
    t.deepEqual((await again.chunks.getMany([hash, oneHash])).map(b => Buffer.from(b!)), [whole, one])
  })

  test(`${label}: volumeSize follows every change (cached per seq), and a deleted and recreated volume starts over`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('sz'))
    t.deepEqual(await store.volumeSize('sz'), { files: 0, bytes: 0 })
    await commit(store, 'sz', fileRecord('/a', ['a1', 'a2']), fileRecord('/b', ['b1']))
    t.deepEqual(await store.volumeSize('sz'), { files: 2, bytes: 3 * CHUNK })
    t.deepEqual(await store.volumeSize('sz'), { files: 2, bytes: 3 * CHUNK }, 'asked again, same answer')
    await commit(store, 'sz', fileRecord('/a', ['a3'], { vv: { 'peer-a': 2 } }))
    t.deepEqual(await store.volumeSize('sz'), { files: 2, bytes: 2 * CHUNK })
    await commit(store, 'sz', tombstone('/b'))
    t.deepEqual(await store.volumeSize('sz'), { files: 1, bytes: CHUNK })
    await store.deleteVolume('sz')
    await store.createVolume(volumeRecord('sz'))
    // Four records: the same id and seq (4) as before the delete, other content.
    await commit(store, 'sz', fileRecord('/c', ['c1']), fileRecord('/d', ['d1']), fileRecord('/e', ['e1']), fileRecord('/f', ['f1']))
    t.is((await store.requireVolume('sz')).seq, 4)
    t.deepEqual(await store.volumeSize('sz'), { files: 4, bytes: 4 * CHUNK })
  })

  test(`${label}: create, get and list volumes`, async t => {
    const { store } = await open(t)
    t.deepEqual(await store.listVolumes(), [])
    t.is(await store.getVolume('v1'), undefined)
    const v1 = volumeRecord('v1')
    t.deepEqual(await store.createVolume(v1), v1)
    await store.createVolume(volumeRecord('v2', { writeMode: 'all', members: ['peer-a', 'peer-b'] }))
    t.deepEqual(await store.getVolume('v1'), v1)
    t.deepEqual(await store.requireVolume('v1'), v1)
    const names = (await store.listVolumes()).map(v => v.name).sort()
    t.deepEqual(names, ['v1', 'v2'])
    t.deepEqual((await store.getVolume('v2'))?.members, ['peer-a', 'peer-b'])
  })

  test(`${label}: a duplicate volume is refused with VOLUME_EXISTS and the original kept`, async t => {
    const { store } = await open(t)
    const original = volumeRecord('dup')
    await store.createVolume(original)
    const err = await rejectsWithCode(t, store.createVolume(volumeRecord('dup', { id: 'f'.repeat(32) })), 'VOLUME_EXISTS')
    t.is(err === undefined ? undefined : httpStatusOf(err), 409)
    t.deepEqual(await store.getVolume('dup'), original)
    t.is((await store.listVolumes()).length, 1)
  })

  test(`${label}: requireVolume and commits on a missing volume give VOLUME_NOT_FOUND`, async t => {
    const { store } = await open(t)
    await rejectsWithCode(t, store.requireVolume('nope'), 'VOLUME_NOT_FOUND')
    await rejectsWithCode(t, commit(store, 'nope', fileRecord('/a', ['x'])), 'VOLUME_NOT_FOUND')
  })

  test(`${label}: updateVolume rewrites the record`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    const next = await store.updateVolume('v', vol => ({ ...vol, generation: 2, members: ['peer-a', 'peer-c'] }))
    t.is(next.generation, 2)
    t.deepEqual(await store.getVolume('v'), next)
    await rejectsWithCode(t, store.updateVolume('missing', vol => vol), 'VOLUME_NOT_FOUND')
  })

  test(`${label}: commitFiles assigns consecutive sequence numbers per volume`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await store.createVolume(volumeRecord('w'))
    const first = await commit(store, 'v', fileRecord('/a', ['a']), fileRecord('/b', ['b']), fileRecord('/c', ['c']))
    t.deepEqual(first.map(r => [r.path, r.seq]), [['/a', 1], ['/b', 2], ['/c', 3]])
    const second = await commit(store, 'v', fileRecord('/d', ['d']))
    t.is(second[0].seq, 4)
    t.is((await store.getVolume('v'))?.seq, 4)
    // Another volume has its own sequence.
    const other = await commit(store, 'w', fileRecord('/a', ['a']))
    t.is(other[0].seq, 1)
    t.is((await store.getVolume('w'))?.seq, 1)
    t.is((await store.getFile('v', '/c'))?.seq, 3)
  })

  test(`${label}: getFile returns what was committed, listFiles walks paths in order under a prefix`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await store.createVolume(volumeRecord('v2'))
    const paths = ['/b/2', '/a', '/b/1', '/ba', '/b/😀', '/b/\uffff', '/c', '/b\u{10000}']
    await commit(store, 'v', ...paths.map(p => fileRecord(p, [p])))
    await commit(store, 'v2', fileRecord('/a', ['other']))
    const rec = await store.getFile('v', '/b/1')
    t.is(rec?.path, '/b/1')
    t.is(rec?.size, CHUNK)
    t.deepEqual(Buffer.from(rec!.chunks), Buffer.from(h('/b/1')))
    t.deepEqual(rec?.vv, { 'peer-a': 1 })
    t.is(await store.getFile('v', '/missing'), undefined)
    t.is(await store.getFile('v2', '/b/1'), undefined, 'volumes do not share files')

    const byteOrder = (xs: string[]): string[] => xs.slice().sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
    t.deepEqual((await all(store.listFiles('v'))).map(r => r.path), byteOrder(paths))
    t.deepEqual((await all(store.listFiles('v', '/b/'))).map(r => r.path), byteOrder(['/b/1', '/b/2', '/b/😀', '/b/\uffff']))
    t.deepEqual((await all(store.listFiles('v', '/b'))).map(r => r.path), byteOrder(['/b/1', '/b/2', '/b/😀', '/b/\uffff', '/ba', '/b\u{10000}']))
    t.deepEqual((await all(store.listFiles('v', '/zzz'))).map(r => r.path), [])
    t.deepEqual((await all(store.listFiles('v2'))).map(r => r.path), ['/a'])
  })

  test(`${label}: listFiles includes tombstones (callers filter)`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await commit(store, 'v', fileRecord('/a', ['a']), fileRecord('/b', ['b']))
    await commit(store, 'v', tombstone('/a'))
    const recs = await all(store.listFiles('v'))
    t.deepEqual(recs.map(r => [r.path, r.deleted]), [['/a', true], ['/b', false]])
  })

  test(`${label}: changesSince gives each path once, at its latest change, in seq order`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await commit(store, 'v', fileRecord('/a', ['a1']), fileRecord('/b', ['b1']), fileRecord('/c', ['c1'])) // 1 2 3
    await commit(store, 'v', fileRecord('/a', ['a2'])) // 4
    await commit(store, 'v', tombstone('/b')) // 5
    await commit(store, 'v', fileRecord('/d', ['d1'])) // 6
    const seen = async (after: number, batch?: number): Promise<Array<[string, number]>> =>
      (await all(store.changesSince('v', after, batch !== undefined ? { batch } : {}))).map(r => [r.path, r.seq])
    t.deepEqual(await seen(0), [['/c', 3], ['/a', 4], ['/b', 5], ['/d', 6]])
    t.deepEqual(await seen(3), [['/a', 4], ['/b', 5], ['/d', 6]])
    t.deepEqual(await seen(4), [['/b', 5], ['/d', 6]])
    t.deepEqual(await seen(6), [], 'nothing after the latest seq')
    t.deepEqual(await seen(1000), [])
    // Small batches page through the same answer.
    t.deepEqual(await seen(0, 1), [['/c', 3], ['/a', 4], ['/b', 5], ['/d', 6]])
    t.deepEqual(await seen(0, 3), [['/c', 3], ['/a', 4], ['/b', 5], ['/d', 6]])
    const latestA = (await all(store.changesSince('v', 0))).find(r => r.path === '/a')
    t.deepEqual(Buffer.from(latestA!.chunks), Buffer.from(h('a2')))
    t.true((await all(store.changesSince('v', 0))).find(r => r.path === '/b')!.deleted)
  })

  test(`${label}: changesSince of one volume does not see another's changes`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await store.createVolume(volumeRecord('v0'))
    await commit(store, 'v', fileRecord('/a', ['a']))
    await commit(store, 'v0', fileRecord('/x', ['x']), fileRecord('/y', ['y']))
    t.deepEqual((await all(store.changesSince('v', 0))).map(r => r.path), ['/a'])
    t.deepEqual((await all(store.changesSince('v0', 0))).map(r => r.path), ['/x', '/y'])
  })

  test(`${label}: a path written twice in one commit keeps only the last record and change`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    const out = await commit(store, 'v', fileRecord('/a', ['first']), fileRecord('/b', ['b']), fileRecord('/a', ['second']))
    t.deepEqual(out.map(r => [r.path, r.seq]).sort(), [['/a', 3], ['/b', 2]])
    t.deepEqual(Buffer.from((await store.getFile('v', '/a'))!.chunks), Buffer.from(h('second')))
    t.deepEqual((await all(store.changesSince('v', 0))).map(r => [r.path, r.seq]), [['/b', 2], ['/a', 3]])
    t.is(await store.refCount(h('first')), 0)
    t.is(await store.refCount(h('second')), 1)
    t.is((await store.getVolume('v'))?.seq, 3)
  })

  test(`${label}: the commit callback sees current records, including earlier ones of the same commit`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await commit(store, 'v', fileRecord('/a', ['a'], { vv: { 'peer-a': 1 } }))
    const seenInside: Array<number | undefined> = []
    await store.commitFiles('v', async ({ get, volume }) => {
      t.is(volume.name, 'v')
      const cur = await get('/a')
      seenInside.push(cur?.seq)
      t.is(await get('/nope'), undefined)
      return [fileRecord('/a', ['a2'], { vv: { 'peer-a': (cur?.vv['peer-a'] ?? 0) + 1 } })]
    })
    t.deepEqual(seenInside, [1])
    t.deepEqual((await store.getFile('v', '/a'))?.vv, { 'peer-a': 2 })
  })

  test(`${label}: reference counts follow shared chunks, overwrites and deletes`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await commit(store, 'v', fileRecord('/a', ['x', 'y']), fileRecord('/b', ['y', 'z']))
    t.is(await store.refCount(h('x')), 1)
    t.is(await store.refCount(h('y')), 2, 'a chunk shared by two files counts twice')
    t.is(await store.refCount(h('z')), 1)
    t.is(await store.refCount(h('never')), 0)

    // A file holding the same chunk twice references it once.
    await commit(store, 'v', fileRecord('/c', ['w', 'w', 'w']))
    t.is(await store.refCount(h('w')), 1)

    // Overwrite /a: x dropped, y kept by /b, z gained a reference.
    await commit(store, 'v', fileRecord('/a', ['z']))
    t.is(await store.refCount(h('x')), 0)
    t.is(await store.refCount(h('y')), 1)
    t.is(await store.refCount(h('z')), 2)

    // Tombstone /b: its chunks lose their references.
    await commit(store, 'v', tombstone('/b'))
    t.is(await store.refCount(h('y')), 0)
    t.is(await store.refCount(h('z')), 1)

    // Tombstone over a tombstone changes nothing; re-creating adds references again.
    await commit(store, 'v', tombstone('/b'))
    t.is(await store.refCount(h('z')), 1)
    await commit(store, 'v', fileRecord('/b', ['y']))
    t.is(await store.refCount(h('y')), 1)

    // Rewriting a file with identical chunks leaves the counts unchanged.
    await commit(store, 'v', fileRecord('/c', ['w']))
    t.is(await store.refCount(h('w')), 1)
  })

  test(`${label}: reference counts are shared across volumes`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await store.createVolume(volumeRecord('w'))
    await commit(store, 'v', fileRecord('/a', ['shared']))
    await commit(store, 'w', fileRecord('/a', ['shared']))
    t.is(await store.refCount(h('shared')), 2)
    await commit(store, 'v', tombstone('/a'))
    t.is(await store.refCount(h('shared')), 1)
  })

  test(`${label}: a watermark lands in the same commit as the records`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await store.createVolume(volumeRecord('w'))
    t.is(await store.getWatermark('v', 'peer-b'), 0)
    const out = await store.commitFiles('v', ({ setWatermark }) => {
      setWatermark('peer-b', 17)
      return Promise.resolve([fileRecord('/a', ['a'])])
    })
    t.is(out.length, 1)
    t.is(await store.getWatermark('v', 'peer-b'), 17)
    t.is(await store.getWatermark('w', 'peer-b'), 0, 'watermarks are per volume')
    // A watermark alone is a commit too (nothing else changes).
    t.deepEqual(await store.commitFiles('v', ({ setWatermark }) => { setWatermark('peer-c', 3); return Promise.resolve([]) }), [])
    t.is(await store.getWatermark('v', 'peer-c'), 3)
    t.is((await store.getVolume('v'))?.seq, 1)
    t.deepEqual(await store.listWatermarks('v'), { 'peer-b': 17, 'peer-c': 3 })
    t.deepEqual(await store.listWatermarks('w'), {})
  })

  test(`${label}: a commit whose callback throws changes nothing, watermark included`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await commit(store, 'v', fileRecord('/a', ['a']))
    const before = await store.getVolume('v')
    const err = await t.throwsAsync(store.commitFiles('v', ({ setWatermark }) => {
      setWatermark('peer-b', 99)
      return Promise.reject(new Error('decided against it'))
    }))
    t.is(err?.message, 'decided against it')
    t.is(await store.getWatermark('v', 'peer-b'), 0)
    t.deepEqual(await store.getVolume('v'), before)
    t.is(await store.refCount(h('a')), 1)
    // The store still commits afterwards (the mutex was released).
    t.is((await commit(store, 'v', fileRecord('/b', ['b'])))[0].seq, 2)
  })

  test(`${label}: an empty commit writes nothing`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    t.deepEqual(await commit(store, 'v'), [])
    const vol = await store.getVolume('v')
    t.is(vol?.seq, 0)
    t.false(vol?.dirty)
  })

  test(`${label}: concurrent commits are serialised with distinct consecutive seqs`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    const results = await Promise.all(Array.from({ length: 20 }, async (_, i) => await commit(store, 'v', fileRecord(`/f${i}`, [`c${i}`]))))
    const seqs = results.map(r => r[0].seq).sort((a, b) => a - b)
    t.deepEqual(seqs, Array.from({ length: 20 }, (_, i) => i + 1))
    t.is((await store.getVolume('v'))?.seq, 20)
  })

  test(`${label}: the dirty flag is set by a commit and cleared by close`, async t => {
    const { store, reopen } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await store.createVolume(volumeRecord('untouched'))
    t.false((await store.getVolume('v'))?.dirty)
    await commit(store, 'v', fileRecord('/a', ['a']))
    t.true((await store.getVolume('v'))?.dirty)
    t.false((await store.getVolume('untouched'))?.dirty)
    t.deepEqual(store.foundDirty, [])
    const again = await reopen()
    t.deepEqual(again.foundDirty, [], 'a clean close leaves nothing dirty')
    t.false((await again.getVolume('v'))?.dirty)
    t.is((await again.getVolume('v'))?.seq, 1)
  })

  test(`${label}: everything persists across close and reopen, and seqs continue`, async t => {
    const { store, reopen } = await open(t)
    await store.createVolume(volumeRecord('v'))
    await store.commitFiles('v', ({ setWatermark }) => {
      setWatermark('peer-b', 5)
      return Promise.resolve([fileRecord('/a', ['a']), fileRecord('/b', ['b', 'shared']), fileRecord('/c', ['shared'])])
    })
    await commit(store, 'v', tombstone('/c'))
    await store.putPeer({ peerId: 'peer-b', addrs: ['/ip4/127.0.0.1/tcp/1'], lastSeen: 7 })
    await store.putMeta('k', { n: 1 })
    await store.chunks.putMany([{ hash: h('a'), bytes: Buffer.from('bytes of a') }])
    const s2 = await reopen()
    t.deepEqual((await all(s2.listFiles('v'))).map(r => [r.path, r.seq, r.deleted]), [['/a', 1, false], ['/b', 2, false], ['/c', 4, true]])
    t.is(await s2.getWatermark('v', 'peer-b'), 5)
    t.is(await s2.refCount(h('shared')), 1)
    t.deepEqual(await s2.getPeer('peer-b'), { peerId: 'peer-b', addrs: ['/ip4/127.0.0.1/tcp/1'], lastSeen: 7 })
    t.deepEqual(await s2.getMeta('k'), { n: 1 })
    t.deepEqual(Buffer.from((await s2.chunks.get(h('a')))!), Buffer.from('bytes of a'))
    t.is((await commit(s2, 'v', fileRecord('/d', ['d'])))[0].seq, 5)
    t.deepEqual((await all(s2.changesSince('v', 2))).map(r => r.path), ['/c', '/d'])
  })

  test(`${label}: a closed store refuses work with STORE_CLOSED; close is idempotent`, async t => {
    const { store } = await open(t)
    await store.createVolume(volumeRecord('v'))
    t.true(store.isOpen)
    await store.close()
    t.false(store.isOpen)
    await store.close()
    await rejectsWithCode(t, store.getVolume('v'), 'STORE_CLOSED')
    await rejectsWithCode(t, store.listVolumes(), 'STORE_CLOSED')
    await rejectsWithCode(t, commit(store, 'v', fileRecord('/a', ['a'])), 'STORE_CLOSED')
    await rejectsWithCode(t, store.createVolume(volumeRecord('w')), 'STORE_CLOSED')
    await rejectsWithCode(t, all(store.listFiles('v')), 'STORE_CLOSED')
  })

  test(`${label}: chunks survive close and reopen, and new ones can be added after`, async t => {
    const { store, reopen } = await open(t)
    const chunks = Array.from({ length: 50 }, (_, i) => ({ hash: h(`chunk ${i}`), bytes: Buffer.alloc(1000 + i, i) }))
    await store.chunks.putMany(chunks.slice(0, 30))
    await Promise.all([store.chunks.putMany(chunks.slice(30, 40)), store.chunks.putMany(chunks.slice(40))])
    await store.chunks.sync()
    const s2 = await reopen()
    for (const c of chunks) t.deepEqual(Buffer.from((await s2.chunks.get(c.hash))!), c.bytes)
    await s2.chunks.putMany([{ hash: h('after'), bytes: Buffer.from('after reopen') }])
    t.deepEqual(Buffer.from((await s2.chunks.get(h('after')))!), Buffer.from('after reopen'))
    t.deepEqual(Buffer.from((await s2.chunks.get(chunks[0].hash))!), chunks[0].bytes)
  })

  test(`${label}: peers and meta`, async t => {
    const { store } = await open(t)
    t.is(await store.getPeer('nobody'), undefined)
    t.deepEqual(await store.listPeers(), [])
    await store.putPeer({ peerId: 'p1', addrs: [], lastSeen: 1 })
    await store.putPeer({ peerId: 'p2', addrs: ['/ip4/10.0.0.1/tcp/4001'], lastSeen: 2 })
    await store.putPeer({ peerId: 'p1', addrs: ['/ip4/10.0.0.2/tcp/4001'], lastSeen: 3 })
    t.deepEqual(await store.getPeer('p1'), { peerId: 'p1', addrs: ['/ip4/10.0.0.2/tcp/4001'], lastSeen: 3 })
    t.deepEqual((await store.listPeers()).map(p => p.peerId).sort(), ['p1', 'p2'])
    t.is(await store.getMeta('missing'), undefined)
    await store.putMeta('schema', 1)
    t.is(await store.getMeta<number>('schema'), 1)
  })

  test(`${label}: chunk store put, has, get, delete and keys`, async t => {
    const { store } = await open(t)
    const a = { hash: h('A'), bytes: Buffer.from('aaaa') }
    const b = { hash: h('B'), bytes: new Uint8Array(0) }
    t.false(await store.chunks.has(a.hash))
    t.deepEqual(await store.chunks.hasMany([]), [])
    await store.chunks.putMany([a, b])
    await store.chunks.putMany([])
    await store.chunks.sync()
    t.true(await store.chunks.has(a.hash))
    t.deepEqual(await store.chunks.hasMany([a.hash, h('C'), b.hash]), [true, false, true])
    t.deepEqual(Buffer.from((await store.chunks.get(a.hash))!), a.bytes)
    t.is((await store.chunks.get(b.hash))?.byteLength, 0)
    t.is(await store.chunks.get(h('C')), undefined)
    const many = await store.chunks.getMany([b.hash, h('C'), a.hash])
    t.is(many.length, 3)
    t.is(many[0]?.byteLength, 0)
    t.is(many[1], undefined)
    t.deepEqual(Buffer.from(many[2]!), a.bytes)
    t.deepEqual(await store.chunks.getMany([]), [])
    const keys = (await all(store.chunks.keys())).map(k => Buffer.from(k).toString('hex')).sort()
    t.deepEqual(keys, [a.hash, b.hash].map(x => Buffer.from(x).toString('hex')).sort())
    await store.chunks.delete([a.hash])
    await store.chunks.delete([])
    t.false(await store.chunks.has(a.hash))
    t.true(await store.chunks.has(b.hash))
  })
}

storeCompliance('pack chunks', async dir => await Store.open(dir, { chunkBackend: 'pack' }))
storeCompliance('level chunks', async dir => await Store.open(dir, { chunkBackend: 'level' }))

test('disk store: the chunk backend is fixed when the store is first used', async t => {
  const dir = await tmpDir(t)
  const first = await Store.open(dir, { chunkBackend: 'level' })
  await first.chunks.putMany([{ hash: h('kept'), bytes: Buffer.from('kept bytes') }])
  await first.close()
  // Asking for another backend later does not orphan the chunks already stored.
  const again = await Store.open(dir, { chunkBackend: 'pack' })
  t.teardown(async () => { await again.close() })
  t.deepEqual(Buffer.from((await again.chunks.get(h('kept')))!), Buffer.from('kept bytes'))
})

// ---- on-disk backend only ----

test('disk store: a second open of the same data dir fails with DATA_DIR_LOCKED; after close it opens', async t => {
  const dir = await tmpDir(t)
  const first = await Store.open(dir)
  t.teardown(async () => { await first.close() })
  await first.createVolume(volumeRecord('v'))
  const err = await rejectsWithCode(t, Store.open(dir), 'DATA_DIR_LOCKED')
  t.is(err === undefined ? undefined : httpStatusOf(err), 409)
  // The first store is unaffected.
  t.truthy(await first.getVolume('v'))
  await first.close()
  const second = await Store.open(dir)
  t.teardown(async () => { await second.close() })
  t.truthy(await second.getVolume('v'))
})

test('disk store: a process killed after a commit leaves the volume in foundDirty, with the commit and its watermark', async t => {
  const dir = await tmpDir(t)
  await killChildAt(t, 'store-crash-child.js', [dir], 'committed\n')

  const store = await Store.open(dir)
  t.deepEqual(store.foundDirty, ['crashy'])
  const vol = await store.getVolume('crashy')
  t.true(vol?.dirty)
  t.is(vol?.seq, 1)
  t.is((await store.getFile('crashy', '/survivor'))?.seq, 1)
  t.is(await store.getWatermark('crashy', 'peer-b'), 42)
  t.is(await store.refCount(createHash('sha256').update('crash chunk').digest()), 1)
  await store.close()

  // The clean close cleared the flag.
  const again = await Store.open(dir)
  t.deepEqual(again.foundDirty, [])
  await again.close()
})

test('disk store: a corrupted record on disk is reported as BAD_MESSAGE, and the store keeps working', async t => {
  const dir = await tmpDir(t)
  let store = await Store.open(dir)
  await store.createVolume(volumeRecord('v'))
  await commit(store, 'v', fileRecord('/good', ['g']), fileRecord('/garbage', ['x']), fileRecord('/wrong-shape', ['y']))
  await store.close()

  // Overwrite two records behind the store's back: undecodable bytes, and valid CBOR of the wrong shape.
  const db = new Level<string, Uint8Array>(join(dir, 'store'), { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  const files = db.sublevel<string, Uint8Array>('files', { valueEncoding: 'view' })
  t.truthy(await files.get('v\x00/garbage'), 'test knows the key layout')
  await files.put('v\x00/garbage', Uint8Array.from([0xff, 0x00, 0x13, 0x37, 0xbf]))
  await files.put('v\x00/wrong-shape', encode({ v: 1, path: '/wrong-shape', size: 'big' }))
  await db.close()

  store = await Store.open(dir)
  t.teardown(async () => { await store.close() })
  await rejectsWithCode(t, store.getFile('v', '/garbage'), 'BAD_MESSAGE')
  await rejectsWithCode(t, store.getFile('v', '/wrong-shape'), 'BAD_MESSAGE')
  await rejectsWithCode(t, all(store.listFiles('v')), 'BAD_MESSAGE')
  t.is((await store.getFile('v', '/good'))?.path, '/good')
  t.is((await commit(store, 'v', fileRecord('/new', ['n'])))[0].seq, 4)
})

// ---- codec ----

const goodFile = (): Record<string, unknown> => ({ ...fileRecord('/a', ['x', 'y']), seq: 3 })
const goodVolume = (): Record<string, unknown> => ({ ...volumeRecord('v') })

test('codec: records round-trip through encode/decode', t => {
  const f = goodFile()
  t.deepEqual(asFileRecord(decode(encode(f))), f as unknown as FileRecord)
  const v = goodVolume()
  t.deepEqual(asVolumeRecord(decode(encode(v))), v as unknown as VolumeRecord)
  const p = { peerId: 'p', addrs: ['/ip4/1.2.3.4/tcp/1'], lastSeen: 0 }
  t.deepEqual(asPeerRecord(decode(encode(p))), p)
})

const badBytes: Array<[string, Uint8Array]> = [
  ['empty', new Uint8Array(0)],
  ['reserved major type byte', Uint8Array.from([0xff])],
  ['truncated map', Uint8Array.from([0xa2, 0x61, 0x61])],
  ['truncated byte string', Uint8Array.from([0x58, 0x20, 1, 2, 3])],
  ['random garbage', Uint8Array.from([0x1c, 0x1d, 0x1e, 0x1f, 0xfc])],
  ['trailing bytes after a value', Uint8Array.from([...cborg.encode({ a: 1 }), 0x00])]
]

for (const [name, bytes] of badBytes) {
  test(`codec: decode of ${name} throws BAD_MESSAGE`, t => {
    const err = t.throws(() => decode(bytes), { instanceOf: ReplicantError })
    t.is(err?.code, 'BAD_MESSAGE')
  })
}

const badFiles: Array<[string, (r: Record<string, unknown>) => unknown]> = [
  ['null', () => null],
  ['a number', () => 5],
  ['a string', () => 'record'],
  ['missing v', r => ({ ...r, v: undefined })],
  ['v zero', r => ({ ...r, v: 0 })],
  ['relative path', r => ({ ...r, path: 'a' })],
  ['empty path', r => ({ ...r, path: '' })],
  ['path not a string', r => ({ ...r, path: 7 })],
  ['negative size', r => ({ ...r, size: -1 })],
  ['fractional size', r => ({ ...r, size: 1.5 })],
  ['size as string', r => ({ ...r, size: '8192' })],
  ['mode missing', r => ({ ...r, mode: undefined })],
  ['mtime negative', r => ({ ...r, mtime: -5 })],
  ['chunkSize zero', r => ({ ...r, chunkSize: 0 })],
  ['chunks not bytes', r => ({ ...r, chunks: 'abc' })],
  ['chunks not a multiple of 32 bytes', r => ({ ...r, chunks: new Uint8Array(33) })],
  ['chunk count does not match size', r => ({ ...r, size: 3 * CHUNK })],
  ['size without chunks', r => ({ ...r, chunks: new Uint8Array(0) })],
  ['version vector negative', r => ({ ...r, vv: { a: -1 } })],
  ['version vector array', r => ({ ...r, vv: [1] })],
  ['deleted not boolean', r => ({ ...r, deleted: 1 })],
  ['seq missing', r => ({ ...r, seq: undefined })],
  ['seq unsafe', r => ({ ...r, seq: 2 ** 60 })]
]

for (const [name, mutate] of badFiles) {
  test(`codec: asFileRecord rejects ${name} with BAD_MESSAGE`, t => {
    const err = t.throws(() => asFileRecord(mutate(goodFile())), { instanceOf: ReplicantError })
    t.is(err?.code, 'BAD_MESSAGE')
  })
}

const badVolumes: Array<[string, (r: Record<string, unknown>) => unknown]> = [
  ['null', () => null],
  ['v missing', r => ({ ...r, v: undefined })],
  ['name empty', r => ({ ...r, name: '' })],
  ['name over 63 chars', r => ({ ...r, name: 'a'.repeat(64) })],
  ['id not hex', r => ({ ...r, id: 'z'.repeat(32) })],
  ['id too short', r => ({ ...r, id: 'a'.repeat(31) })],
  ['generation zero', r => ({ ...r, generation: 0 })],
  ['members not an array', r => ({ ...r, members: 'peer-a' })],
  ['member empty', r => ({ ...r, members: [''] })],
  ['write mode unknown', r => ({ ...r, writeMode: 'some' })],
  ['chunkSize negative', r => ({ ...r, chunkSize: -4096 })],
  ['createdAt string', r => ({ ...r, createdAt: 'yesterday' })],
  ['seq negative', r => ({ ...r, seq: -1 })],
  ['dirty missing', r => ({ ...r, dirty: undefined })]
]

for (const [name, mutate] of badVolumes) {
  test(`codec: asVolumeRecord rejects ${name} with BAD_MESSAGE`, t => {
    const err = t.throws(() => asVolumeRecord(mutate(goodVolume())), { instanceOf: ReplicantError })
    t.is(err?.code, 'BAD_MESSAGE')
  })
}

const badPeers: Array<[string, unknown]> = [
  ['null', null],
  ['peerId missing', { addrs: [], lastSeen: 0 }],
  ['addrs not an array', { peerId: 'p', addrs: 'x', lastSeen: 0 }],
  ['addr empty', { peerId: 'p', addrs: [''], lastSeen: 0 }],
  ['lastSeen negative', { peerId: 'p', addrs: [], lastSeen: -1 }]
]

for (const [name, value] of badPeers) {
  test(`codec: asPeerRecord rejects ${name} with BAD_MESSAGE`, t => {
    const err = t.throws(() => asPeerRecord(value), { instanceOf: ReplicantError })
    t.is(err?.code, 'BAD_MESSAGE')
  })
}
