import '../core/polyfill.js'
import test from 'ava'
import { join } from 'node:path'
import { readdir, rm, truncate, stat } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { Level } from 'level'
import { PackChunkStore } from '../store/pack-chunk-store.js'
import { sha256 } from '../store/chunk-store.js'
import { tmpDir, startNode, httpRequest } from './helpers.js'

test('pack store: a chunk location reaches level only after its bytes are synced', async t => {
  const dir = await tmpDir(t)
  const db = new Level<string, Uint8Array>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  t.teardown(async () => { await db.close() })
  const loc = db.sublevel<Uint8Array, Uint8Array>('chunkloc', { keyEncoding: 'buffer', valueEncoding: 'view' })
  const packs = await PackChunkStore.open(join(dir, 'chunks'), loc)
  const bytes = randomBytes(1000)
  const hash = sha256(bytes)
  await packs.putMany([{ hash, bytes }])
  // Readable and known at once (a put that finds it reuses it)...
  t.true(await packs.has(hash))
  t.deepEqual((await packs.hasMany([hash, sha256(Buffer.from('x'))])), [true, false])
  t.true(Buffer.from((await packs.get(hash))!).equals(bytes))
  // ...but not in level: an unrelated synced batch now (a watermark, a peer record) would
  // otherwise make a location durable whose bytes a power loss can still take.
  t.is(await loc.get(Buffer.from(hash)), undefined)
  await packs.sync()
  t.not(await loc.get(Buffer.from(hash)), undefined)
  t.true(Buffer.from((await packs.get(hash))!).equals(bytes))
  await packs.close()
})

for (const how of ['deleted', 'truncated'] as const) {
  test(`a pack ${how} while the node was stopped: a read answers CHUNK_MISSING, not 500 INTERNAL, and the chunk can be written again`, async t => {
    const dataDir = await tmpDir(t)
    const body = randomBytes(40_000)
    const first = await startNode(t, { dataDir })
    t.is((await httpRequest(first.apiUrl!, { method: 'POST', path: '/v1/volumes', body: JSON.stringify({ name: 'v' }), headers: { 'content-type': 'application/json' } })).status, 201)
    t.is((await httpRequest(first.apiUrl!, { method: 'PUT', path: '/v1/volumes/v/files/f', body })).status, 201)
    await first.stop()
    const chunks = join(dataDir, 'chunks')
    for (const f of await readdir(chunks)) {
      const p = join(chunks, f)
      if ((await stat(p)).size === 0) continue
      if (how === 'deleted') await rm(p)
      else await truncate(p, 100)
    }
    const again = await startNode(t, { dataDir })
    const res = await httpRequest(again.apiUrl!, { path: '/v1/volumes/v/files/f' })
    t.is(res.status, 503, res.body.toString())
    t.is(res.json().error.code, 'CHUNK_MISSING')
    // The lost chunks are not claimed any more: the same bytes written again are stored again.
    t.is((await httpRequest(again.apiUrl!, { method: 'PUT', path: '/v1/volumes/v/files/g', body })).status, 201)
    const back = await httpRequest(again.apiUrl!, { path: '/v1/volumes/v/files/f' })
    t.is(back.status, 200)
    t.true(back.body.equals(body))
  })
}
