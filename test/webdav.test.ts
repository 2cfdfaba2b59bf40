/**
 * WebDAV (issue 18) against clients nobody here wrote: litmus's compliance suites, rclone's
 * WebDAV backend (a tree of 1,000 files in and out; a ranged read on a wannabe that fetches
 * only the chunks it covers, seen in the node's own status counters).
 */
import '../core/polyfill.js'
import test from 'ava'
import { mkdir, writeFile, readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { randomBytes, createHash } from 'node:crypto'
import { startNode, tmpDir, waitFor, randomSource, httpRequest, clientOf } from './helpers.js'
import { run, rclone, rcloneEnv } from './webdav-clients.js'
import { FOLDER_MODE } from '../core/records.js'

const SLOW_OK = 120_000

async function treeDigest (dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue
    const p = join(e.parentPath, e.name)
    out.set(relative(dir, p), createHash('sha256').update(await readFile(p)).digest('hex'))
  }
  return out
}

test('litmus: the basic, copymove, props and locks suites pass', async t => {
  t.timeout(300_000)
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'lit' })
  const res = await run('litmus', ['-k', `${node.apiUrl!}/dav/lit/`, 'litmus', node.apiToken!], { TESTS: 'basic copymove props locks' })
  const summaries = [...res.stdout.matchAll(/summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed/g)]
  t.deepEqual(summaries.map(m => m[1]), ['basic', 'copymove', 'props', 'locks'], res.stdout.slice(-2000))
  for (const m of summaries) t.is(m[4], '0', `${m[1]}: ${m[3]} of ${m[2]} passed\n${res.stdout.split('\n').filter(l => /FAIL/.test(l)).join('\n')}`)
  t.is(res.code, 0)
})

test('rclone: a tree of 1,000 files copied in and out through WebDAV is identical (rclone check, sha256)', async t => {
  t.timeout(300_000)
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'tree' })
  const dir = await tmpDir(t)
  const src = join(dir, 'src')
  for (let i = 0; i < 1000; i++) {
    const sub = join(src, `d${i % 10}`, i % 3 === 0 ? 'deep' : '')
    await mkdir(sub, { recursive: true })
    await writeFile(join(sub, `f${i}.bin`), randomBytes(i * 7 % 5000))
  }
  await mkdir(join(src, 'empty-folder'))
  const env = await rcloneEnv(dir, node.apiUrl!, 'tree', node.apiToken!)
  const up = await rclone(env, 'copy', '--create-empty-src-dirs', src, 'd:in')
  t.is(up.code, 0, up.stderr)
  const check = await rclone(env, 'check', '--download', src, 'd:in')
  t.is(check.code, 0, check.stderr)
  t.regex(check.stderr, /0 differences found/)
  t.regex(check.stderr, /1000 matching files/)
  // Out again, with the bearer token this time.
  const bearer = await rcloneEnv(dir, node.apiUrl!, 'tree', node.apiToken!, 'bearer')
  const out = join(dir, 'out')
  const down = await rclone(bearer, 'copy', '--create-empty-src-dirs', 'd:in', out)
  t.is(down.code, 0, down.stderr)
  t.deepEqual(await treeDigest(out), await treeDigest(src))
  t.deepEqual(await readdir(join(out, 'empty-folder')), [], 'the empty folder (a marker record) came back')
  // The same files through the JSON API; the folders rclone made with MKCOL are marker records.
  const listed = (await httpRequest(node.apiUrl!, { path: '/v1/volumes/tree/files?prefix=/in/d3/' })).json().files as Array<{ path: string, mode: number }>
  t.is(listed.filter(f => (f.mode & FOLDER_MODE) === 0).length, 100)
  t.deepEqual(listed.filter(f => (f.mode & FOLDER_MODE) !== 0).map(f => f.path), ['/in/d3/deep'])
})

test('rclone cat --offset --count on a wannabe fetches only the chunks the range covers', async t => {
  t.timeout(180_000)
  const a = await startNode(t, { api: false })
  await a.createVolume({ name: 'lazy' })
  const src = randomSource(8 * 1024 * 1024)
  const rec = await a.volumes.putFile('lazy', '/movie.bin', src.source)
  // copyConcurrency 0: no background copy, so every chunk it holds came from a read.
  const b = await startNode(t, { join: [a.multiaddrs()[0]], copyConcurrency: 0, readTimeoutMs: SLOW_OK })
  await a.sync.addReplica('lazy', b.peerId)
  await waitFor(async () => { try { return await b.volumes.stat('lazy', '/movie.bin') } catch { return undefined } })
  const status = async (): Promise<{ chunksReceived: number, bytesReceived: number }> => (await httpRequest(b.apiUrl!, { path: '/v1/status' })).json().fetched.onDemand
  t.is((await status()).chunksReceived, 0)
  const cs = rec.chunkSize
  // From the middle of chunk 5 to the middle of chunk 6: two chunks.
  const offset = 5 * cs + cs / 2
  const count = cs
  const env = await rcloneEnv(await tmpDir(t), b.apiUrl!, 'lazy', b.apiToken!)
  const cat = await run('rclone', ['cat', '--offset', String(offset), '--count', String(count), 'd:movie.bin'], env)
  t.is(cat.code, 0, cat.stderr)
  const expected: Uint8Array[] = []
  for await (const p of a.volumes.readFile('lazy', rec, { start: offset, end: offset + count - 1 })) expected.push(p)
  t.deepEqual(cat.stdoutBytes, Buffer.concat(expected))
  const after = await status()
  t.is(after.chunksReceived, 2, 'the two chunks the range covers, no more')
  t.is(after.bytesReceived, 2 * cs)
  t.is((await b.store.getVolume('lazy'))?.state, 'copy', 'still a wannabe')
})
