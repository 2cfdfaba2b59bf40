import '../core/polyfill.js'
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { startNode, httpRequest, runCli } from './helpers.js'
import { bytes, read } from './replication-helpers.js'
import { chunkHashes } from '../core/records.js'
import type { ReplicantNode } from '../node/replicant-node.js'

async function readAt (node: ReplicantNode, vol: string, snap: string, path: string): Promise<Buffer> {
  const rec = await node.volumes.statAt(vol, snap, path)
  const parts: Uint8Array[] = []
  for await (const p of node.volumes.readFile(vol, rec)) parts.push(p)
  return Buffer.concat(parts)
}

async function listAt (node: ReplicantNode, vol: string, snap: string): Promise<string[]> {
  const out: string[] = []
  for await (const f of node.volumes.listFilesAt(vol, snap)) out.push(f.path)
  return out
}

test('a snapshot shows the volume as it was, whatever is written after it, also under concurrent writes', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 's' })
  const before = new Map<string, Buffer>()
  for (let i = 0; i < 20; i++) {
    const data = randomBytes(1000 + i * 3000)
    before.set(`/f${i}`, data)
    await a.volumes.putFile('s', `/f${i}`, bytes(data))
  }
  // Writers run while the snapshot is taken; the snapshot is one seq: either before or after each.
  const writers = Promise.all([
    (async () => { for (let i = 0; i < 20; i += 2) await a.volumes.putFile('s', `/f${i}`, bytes(Buffer.from(`rewritten ${i}`))) })(),
    (async () => { for (let i = 1; i < 20; i += 4) await a.volumes.removeFile('s', `/f${i}`) })(),
    (async () => { for (let i = 0; i < 10; i++) await a.volumes.putFile('s', `/new${i}`, bytes(Buffer.from(`new ${i}`))) })()
  ])
  const snap = await a.volumes.createSnapshot('s', 'mid')
  await writers
  // What the snapshot shows is exactly the live state at its seq: recompute it from the
  // records' seqs (every version written at or before snap.seq, and not replaced by then).
  const shown = await listAt(a, 's', 'mid')
  for (const p of shown) {
    const rec = await a.volumes.statAt('s', 'mid', p)
    t.true(rec.seq <= snap.seq)
  }
  // After the writers, the same snapshot still shows the same thing.
  const again = await listAt(a, 's', 'mid')
  t.deepEqual(again, shown)
  // A snapshot taken now shows the final state; the first one still shows the old bytes.
  await a.volumes.createSnapshot('s', 'after')
  t.is((await listAt(a, 's', 'after')).length, 20 - 5 + 10)
  for (let i = 0; i < 20; i += 2) {
    t.is((await read(a, 's', `/f${i}`)).toString(), `rewritten ${i}`)
    t.is((await readAt(a, 's', 'after', `/f${i}`)).toString(), `rewritten ${i}`)
  }
  for (const p of shown.filter(x => x.startsWith('/f'))) {
    const v = await readAt(a, 's', 'mid', p)
    const i = Number(p.slice(2))
    t.true(v.equals(before.get(p)!) || v.toString() === `rewritten ${i}`, `${p} shows a version that existed`)
  }
})

test('writes after a snapshot never change it; deleting the snapshot releases the kept versions', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'k' })
  const v1 = randomBytes(150_000)
  const rec1 = await a.volumes.putFile('k', '/doc', bytes(v1))
  await a.volumes.putFile('k', '/gone', bytes(Buffer.from('to be deleted')))
  await a.volumes.createSnapshot('k', 'monday')
  await a.volumes.putFile('k', '/doc', bytes(Buffer.from('tuesday')))
  await a.volumes.removeFile('k', '/gone')
  await a.volumes.putFile('k', '/later', bytes(Buffer.from('later')))
  t.deepEqual(await listAt(a, 's'.replace('s', 'k'), 'monday'), ['/doc', '/gone'])
  t.deepEqual(await readAt(a, 'k', 'monday', '/doc'), v1)
  t.is((await readAt(a, 'k', 'monday', '/gone')).toString(), 'to be deleted')
  await t.throwsAsync(a.volumes.statAt('k', 'monday', '/later'), { message: /no file/ })
  const h = [...chunkHashes(rec1)][0]
  t.is(await a.store.refCount(h), 1, 'the kept version holds its chunks')
  const r = await a.store.deleteSnapshot('k', 'monday')
  t.is(r.versionsReleased, 2)
  t.is(await a.store.refCount(h), 0, 'released: the chunk is no longer referenced')
  await t.throwsAsync(a.volumes.statAt('k', 'monday', '/doc'), { message: /no snapshot/ })
})

test('taking a snapshot does work independent of the volume size', async t => {
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'small' })
  await a.createVolume({ name: 'large' })
  for (let i = 0; i < 5; i++) await a.volumes.putFile('small', `/f${i}`, bytes(Buffer.from(`${i}`)))
  for (let i = 0; i < 500; i++) await a.volumes.putFile('large', `/f${i}`, bytes(Buffer.from(`${i}`)))
  const before = a.store.counters.versionsSaved
  await a.volumes.createSnapshot('small', 'x')
  await a.volumes.createSnapshot('large', 'x')
  t.is(a.store.counters.versionsSaved, before, 'creating copies no record, small or large')
  // Copy-on-write: one overwrite keeps exactly one version.
  await a.volumes.putFile('large', '/f7', bytes(Buffer.from('changed')))
  t.is(a.store.counters.versionsSaved, before + 1)
  await a.volumes.putFile('large', '/f7', bytes(Buffer.from('changed again')))
  t.is(a.store.counters.versionsSaved, before + 1, 'a version no snapshot shows is not kept')
})

test('snapshots through the HTTP API and the CLI: create, list, get --snapshot, ls --snapshot, delete', async t => {
  const a = await startNode(t)
  await a.createVolume({ name: 'cli' })
  await a.volumes.putFile('cli', '/a.txt', bytes(Buffer.from('first')))
  const created = await httpRequest(a.apiUrl!, { method: 'POST', path: '/v1/volumes/cli/snapshots', body: JSON.stringify({ name: 'v1' }), headers: { 'content-type': 'application/json' } })
  t.is(created.status, 201)
  t.is(created.json().recordsCopied, 0)
  await a.volumes.putFile('cli', '/a.txt', bytes(Buffer.from('second')))
  const got = await httpRequest(a.apiUrl!, { path: '/v1/volumes/cli/files/a.txt?snapshot=v1' })
  t.is(got.body.toString(), 'first')
  const missing = await httpRequest(a.apiUrl!, { path: '/v1/volumes/cli/files/a.txt?snapshot=nope' })
  t.is(missing.status, 404)
  t.is(missing.json().error.code, 'SNAPSHOT_NOT_FOUND')
  const env = { dataDir: a.dataDir }
  t.is((await runCli(['get', 'cli', '/a.txt', '--snapshot', 'v1'], env)).stdout, 'first')
  t.is((await runCli(['get', 'cli', '/a.txt'], env)).stdout, 'second')
  const made = await runCli(['snapshot', 'create', 'cli', 'v2'], env)
  t.regex(made.stdout, /snapshot v2 of cli at seq 2/)
  t.regex((await runCli(['snapshot', 'list', 'cli'], env)).stdout, /v1\tseq 1[\s\S]*v2\tseq 2/)
  t.regex((await runCli(['ls', 'cli', '--snapshot', 'v1'], env)).stdout, /\/a\.txt/)
  const dup = await runCli(['snapshot', 'create', 'cli', 'v2'], env)
  t.regex(dup.stderr, /SNAPSHOT_EXISTS/)
  const bad = await runCli(['snapshot', 'create', 'cli', 'Bad Name'], env)
  t.regex(bad.stderr, /BAD_SNAPSHOT_NAME/)
  t.regex((await runCli(['snapshot', 'delete', 'cli', 'v1'], env)).stdout, /deleted snapshot v1 of cli \(1 kept version/)
})
