import '../core/polyfill.js'
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdir, writeFile, utimes, chmod, readdir, stat, readFile, access } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { randomBytes } from 'node:crypto'
import { pack } from 'tar-stream'
import { Readable } from 'node:stream'
import type { ReplicantError } from '../core/errors.js'
import { tmpDir, startNode, clientOf, httpRequest, sha256Hex } from './helpers.js'

const exec = promisify(execFile)

/** Every regular file under `dir`: relative path -> sha256, mode, mtime (whole seconds). */
async function tree (dir: string): Promise<Map<string, { sha: string, mode: number, mtime: number }>> {
  const out = new Map<string, { sha: string, mode: number, mtime: number }>()
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else {
        const st = await stat(p)
        out.set(relative(dir, p), { sha: sha256Hex(await readFile(p)), mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000) })
      }
    }
  }
  await walk(dir)
  return out
}

test('tar c DIR | curl -T - .../import, then curl .../export | tar x: the same files, bytes (sha256), modes and mtimes', async t => {
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'v' })
  const src = await tmpDir(t)
  await mkdir(join(src, 'a', 'b'), { recursive: true })
  const files: Array<[string, number]> = [['top.txt', 10], ['a/one.bin', 70_000], ['a/b/big.bin', 3 * 1024 * 1024 + 17], ['a/b/empty', 0], ['a/café ü.txt', 100]]
  for (let i = 0; i < 40; i++) files.push([`a/many/f${i}`, 1000 + i * 300])
  await mkdir(join(src, 'a', 'many'))
  for (const [name, size] of files) {
    const p = join(src, name)
    await writeFile(p, randomBytes(size))
    await utimes(p, 1_700_000_000 + size % 1000, 1_700_000_000 + size % 1000)
  }
  await chmod(join(src, 'top.txt'), 0o755)
  const url = `${node.apiUrl!}/v1/volumes/v/import?prefix=/imp`
  const auth = `Authorization: Bearer ${node.apiToken!}`
  const { stdout } = await exec('bash', ['-c', `set -o pipefail; tar c -C "${src}" . | curl -sS --fail-with-body -T - -H "${auth}" "${url}"`])
  const answer = JSON.parse(stdout) as { files: number, bytes: number }
  t.is(answer.files, files.length)
  t.is(answer.bytes, files.reduce((n, [, s]) => n + s, 0))
  const listed = (await clientOf(node).list('v', '/imp/')).files
  t.is(listed.length, files.length)
  t.is(listed.find(f => f.path === '/imp/top.txt')?.mode, 0o755)

  const out = await tmpDir(t)
  await exec('bash', ['-c', `set -o pipefail; curl -sS --fail -H "${auth}" "${node.apiUrl!}/v1/volumes/v/export?prefix=/imp" | tar x -C "${out}"`])
  t.deepEqual(await tree(out), await tree(src))

  // POST works the same, and a prefix of one directory exports only it.
  const again = await exec('bash', ['-c', `set -o pipefail; tar c -C "${src}" a/b | curl -sS --fail-with-body -X POST --data-binary @- -H "${auth}" "${node.apiUrl!}/v1/volumes/v/import?prefix=/post"`])
  t.is((JSON.parse(again.stdout) as { files: number }).files, 2)
  const sub = await tmpDir(t)
  await exec('bash', ['-c', `set -o pipefail; curl -sS --fail -H "${auth}" "${node.apiUrl!}/v1/volumes/v/export?prefix=/post/a" | tar x -C "${sub}"`])
  t.deepEqual([...(await tree(sub)).keys()].sort(), ['b/big.bin', 'b/empty'])
})

/** A tar stream of the given entries, made with tar-stream (so names the tar tool would rewrite get through). */
async function archive (entries: Array<{ name: string, type?: 'file' | 'symlink' | 'character-device' | 'block-device' | 'fifo' | 'link', body?: string, linkname?: string }>): Promise<Buffer> {
  const p = pack()
  const parts: Buffer[] = []
  const done = (async () => { for await (const b of p as AsyncIterable<Buffer>) parts.push(b) })()
  for (const e of entries) {
    const type = e.type ?? 'file'
    if (type === 'file') p.entry({ name: e.name, type }, e.body ?? '')
    else p.entry({ name: e.name, type, linkname: e.linkname ?? '', devmajor: 1, devminor: 3 })
  }
  p.finalize()
  await done
  return Buffer.concat(parts)
}

test('archive entries are validated like any path: traversal, absolute names, links and devices are refused with a typed error', async t => {
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'v' })
  const cases: Array<[string, Parameters<typeof archive>[0], string]> = [
    ['traversal', [{ name: 'ok', body: 'fine' }, { name: '../x', body: 'escape' }], 'BAD_PATH'],
    ['traversal inside', [{ name: 'a/../../x', body: 'escape' }], 'BAD_PATH'],
    ['absolute', [{ name: '/etc/passwd', body: 'root' }], 'BAD_PATH'],
    ['symlink', [{ name: 'link', type: 'symlink', linkname: '/etc/passwd' }], 'UNSUPPORTED_ENTRY'],
    ['hard link', [{ name: 'hard', type: 'link', linkname: 'ok' }], 'UNSUPPORTED_ENTRY'],
    ['char device', [{ name: 'null', type: 'character-device' }], 'UNSUPPORTED_ENTRY'],
    ['block device', [{ name: 'sda', type: 'block-device' }], 'UNSUPPORTED_ENTRY'],
    ['fifo', [{ name: 'pipe', type: 'fifo' }], 'UNSUPPORTED_ENTRY'],
    ['control character', [{ name: 'bad\u0007name', body: 'x' }], 'BAD_PATH']
  ]
  for (const [label, entries, code] of cases) {
    const res = await httpRequest(node.apiUrl!, { method: 'PUT', path: `/v1/volumes/v/import?prefix=/${label.replace(/ /g, '-')}`, body: await archive(entries) })
    t.is(res.status, 400, label)
    t.is(res.json().error.code, code, label)
  }
  const res = await httpRequest(node.apiUrl!, { method: 'PUT', path: '/v1/volumes/v/import', body: randomBytes(4096) })
  t.is(res.status, 400)
  t.is(res.json().error.code, 'BAD_ARCHIVE')
  const paths = (await clientOf(node).list('v')).files.map(f => f.path)
  // The one good file before the bad entry stays; nothing else got in, and nothing outside the volume.
  t.deepEqual(paths, ['/traversal/ok'])
  await t.throwsAsync(access(join(node.dataDir, '..', 'x')))
  // A prefix is validated too.
  t.is((await httpRequest(node.apiUrl!, { method: 'PUT', path: '/v1/volumes/v/import?prefix=/../up', body: await archive([{ name: 'f', body: 'x' }]) })).json().error.code, 'BAD_PATH')
  // The node is fine afterwards.
  t.is((await httpRequest(node.apiUrl!, { method: 'PUT', path: '/v1/volumes/v/import?prefix=/good', body: await archive([{ name: 'f', body: 'x' }]) })).status, 200)
})

test('a refused import closes its connection: the client\'s next request on the same agent is answered at once, not reset after the idle timeout', async t => {
  const node = await startNode(t)
  const c = clientOf(node)
  await c.createVolume({ name: 'v' })
  const res = await httpRequest(node.apiUrl!, { method: 'PUT', path: '/v1/volumes/v/import', body: await archive([{ name: 'bad\\name', body: 'x' }, { name: 'ok', body: 'fine' }]) })
  t.is(res.json().error.code, 'BAD_PATH')
  t.is(res.headers.connection, 'close')
  // The CLI's case: an import refused, then PUTs on the same keep-alive agent.
  for (let i = 0; i < 3; i++) {
    // Streamed as the CLI streams its batches: a tar-stream pack, entry by entry.
    const p = pack()
    const refused = t.throwsAsync(c.importTar('v', '/t', p as unknown as Readable))
    p.entry({ name: 'bad\\name' }, 'refused')
    // The rest comes after the node has refused the first entry (the connection may be gone).
    for (let k = 0; k < 10 && !p.destroyed; k++) {
      await new Promise(resolve => setTimeout(resolve, 5))
      if (!p.destroyed) p.entry({ name: `ok-${k}` }, `file ${k}`)
    }
    if (!p.destroyed) p.finalize()
    const err = await refused
    t.is((err as ReplicantError).code, 'BAD_PATH')
    const started = Date.now()
    await c.put('v', `/after-${i}`, Readable.from([Buffer.from('x')]), { size: 1 })
    t.true(Date.now() - started < 2000, `the PUT after took ${Date.now() - started} ms`)
  }
})
