import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { createHash, randomBytes, randomInt } from 'node:crypto'
import { Store, type NewFileRecord } from '../store/store.js'
import { RECORD_VERSION, type VolumeRecord } from '../core/records.js'
import { ReplicantError, NotFoundError, Codes } from '../core/errors.js'
import { tmpDir, spawnNodeProcess, httpRequest, sha256Hex, type NodeProcess } from './helpers.js'

const CHUNK = 4096
const h = (label: string): Uint8Array => createHash('sha256').update(label).digest()

function volumeRecord (name: string): VolumeRecord {
  return {
    v: RECORD_VERSION, name, id: createHash('md5').update(name).digest('hex'), generation: 1, members: ['peer-a'],
    writeMode: 'active', chunkSize: CHUNK, createdAt: 1_700_000_000_000, seq: 0, dirty: false
  }
}

function fileRecord (path: string, labels: string[], vv: Record<string, number> = { 'peer-a': 1 }): NewFileRecord {
  return {
    v: RECORD_VERSION, path, size: labels.length * CHUNK, mode: 0o644, mtime: 1_700_000_000_000, chunkSize: CHUNK,
    chunks: new Uint8Array(Buffer.concat(labels.map(h))), vv, deleted: false
  }
}

test('concurrent commits share batches: each sees the ones before it, a failing decide fails alone, seqs and refs stay exact', async t => {
  const dir = await tmpDir(t)
  const store = await Store.open(dir)
  t.teardown(async () => { await store.close() })
  await store.createVolume(volumeRecord('v'))
  await store.createVolume(volumeRecord('w'))
  const N = 60
  const results = await Promise.allSettled(Array.from({ length: N }, async (_, i) => {
    if (i === 17) {
      return await store.commitFiles('v', async () => await Promise.reject(new NotFoundError(Codes.FILE_NOT_FOUND, 'refused by decide')))
    }
    // Every commit rewrites /shared from what it sees: the group must show each the one before.
    return await store.commitFiles(i % 5 === 0 ? 'w' : 'v', async ({ get }) => {
      const cur = await get('/shared')
      const n = (cur?.vv['peer-a'] ?? 0) + 1
      return [fileRecord(`/f${i}`, ['common', `own-${i}`]), fileRecord('/shared', ['common'], { 'peer-a': n })]
    })
  }))
  const failed = results.filter(r => r.status === 'rejected')
  t.is(failed.length, 1)
  t.is((failed[0].reason as ReplicantError).code, Codes.FILE_NOT_FOUND)
  t.true(store.counters.groups < N - 1, `${store.counters.groups} groups for ${N - 1} commits`)
  t.is(store.counters.groupedCommits, N - 1)

  const check = async (s: Store): Promise<void> => {
    const v = await s.requireVolume('v')
    const w = await s.requireVolume('w')
    const inW = Array.from({ length: N }, (_, i) => i).filter(i => i % 5 === 0).length
    const inV = N - 1 - inW
    // Two records per commit, consecutive seqs, no gap.
    t.is(v.seq, inV * 2)
    t.is(w.seq, inW * 2)
    t.is((await s.getFile('v', '/shared'))?.vv['peer-a'], inV)
    t.is((await s.getFile('w', '/shared'))?.vv['peer-a'], inW)
    t.is(await s.getFile('v', '/f17'), undefined)
    // `common` is referenced by every /fN of v and by /shared, once each.
    t.is(await s.refCount(h('common'), 'v'), inV + 1)
    t.is(await s.refCount(h('common'), 'w'), inW + 1)
    let changes = 0
    for await (const rec of s.changesSince('v', 0)) changes += rec.seq > 0 ? 1 : 0
    t.is(changes, inV + 1, 'one change-log entry per live path')
  }
  await check(store)
  await store.close()
  const again = await Store.open(dir)
  t.teardown(async () => { await again.close() })
  await check(again)
})

test('a commit queued behind a group is answered only with the batch that holds it', async t => {
  const dir = await tmpDir(t)
  const store = await Store.open(dir)
  t.teardown(async () => { await store.close() })
  await store.createVolume(volumeRecord('v'))
  // The first decide holds its group open: the others queue meanwhile and form the next group.
  let release!: () => void
  const held = new Promise<void>(resolve => { release = resolve })
  const first = store.commitFiles('v', async () => { await held; return [fileRecord('/a', ['a'])] })
  await new Promise(resolve => setTimeout(resolve, 20)) // the first group has started
  const answered: string[] = []
  const rest = Array.from({ length: 10 }, async (_, i) => {
    const [rec] = await store.commitFiles('v', async () => await Promise.resolve([fileRecord(`/b${i}`, ['b'])]))
    answered.push(rec.path)
    // Answered means durable: the record is in the store's index by then.
    t.truthy(await store.getFile('v', rec.path))
  })
  await new Promise(resolve => setTimeout(resolve, 50))
  t.deepEqual(answered, [], 'nothing answered while the group ahead is open')
  release()
  await first
  await Promise.all(rest)
  t.is(store.counters.groups, 2, 'the ten queued commits went in one group')
})

async function createVolume (url: string, name: string): Promise<void> {
  const res = await httpRequest(url, { method: 'POST', path: '/v1/volumes', body: JSON.stringify({ name }), headers: { 'content-type': 'application/json' } })
  if (res.status !== 201) throw new Error(`create volume: ${res.status} ${res.body.toString()}`)
}

/** 8 writers PUT until the node kills itself at `point`; after a restart every acknowledged write is there, whole. */
async function crashMidBatch (t: ExecutionContext, point: string): Promise<void> {
  const dataDir = await tmpDir(t)
  const node: NodeProcess = await spawnNodeProcess(t, dataDir)
  await createVolume(node.url, 'v')
  const skip = randomInt(20, 60)
  t.is((await httpRequest(node.url, { method: 'POST', path: '/v1/faults/crash', body: JSON.stringify({ point, skip }), headers: { 'content-type': 'application/json' } })).status, 200)
  const sent = new Map<string, string>()
  const acked = new Set<string>()
  let n = 0
  let dead = false
  void node.exited.then(() => { dead = true })
  const writer = async (): Promise<void> => {
    while (!dead) {
      const path = `/f${n++}`
      const bytes = randomBytes(randomInt(1, 40 * 1024))
      sent.set(path, sha256Hex(bytes))
      const res = await httpRequest(node.url, { method: 'PUT', path: `/v1/volumes/v/files${path}`, body: bytes }).catch(() => undefined)
      if (res?.status === 201) acked.add(path)
    }
  }
  await Promise.all(Array.from({ length: 8 }, writer))
  const exit = await node.exited
  t.is(exit.signal, 'SIGKILL', 'the node died at the crash point')
  t.true(acked.size > 0)

  const again = await spawnNodeProcess(t, dataDir)
  const files = (await httpRequest(again.url, { path: '/v1/volumes/v/files' })).json().files as Array<{ path: string, size: number }>
  const listed = new Set(files.map(f => f.path))
  for (const p of acked) t.true(listed.has(p), `acknowledged ${p} survived`)
  for (const f of files) {
    const body = await httpRequest(again.url, { path: `/v1/volumes/v/files${f.path}` })
    t.is(body.status, 200)
    t.is(sha256Hex(body.body), sent.get(f.path) ?? 'never sent', `${f.path} whole`)
  }
  const info = (await httpRequest(again.url, { path: '/v1/volumes/v' })).json()
  t.is(info.seq, files.length, 'the change log has no gap')
  t.is((await httpRequest(again.url, { method: 'PUT', path: '/v1/volumes/v/files/after', body: 'x' })).json().seq, files.length + 1)
}

test('kill -9 after a group\'s chunks are synced, before its batch: every acknowledged write survives', async t => {
  await crashMidBatch(t, 'commit-synced')
})

test('kill -9 after a group\'s batch is written, before its answers: every acknowledged write survives', async t => {
  await crashMidBatch(t, 'commit-written')
})
