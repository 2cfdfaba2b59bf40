import '../core/polyfill.js'
import test from 'ava'
import { mkdir, writeFile, utimes, chmod, readdir, stat, readFile, symlink } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { randomBytes } from 'node:crypto'
import { tmpDir, startNode, clientOf, runCli, sha256Hex, httpRequest } from './helpers.js'

/** Every regular file under `dir`: relative path -> sha256, mode, mtime (ms). */
async function tree (dir: string): Promise<Record<string, { sha: string, mode: number, mtime: number }>> {
  const out: Record<string, { sha: string, mode: number, mtime: number }> = {}
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else if (e.isFile()) {
        const st = await stat(p)
        out[relative(dir, p)] = { sha: sha256Hex(await readFile(p)), mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs) }
      }
    }
  }
  await walk(dir)
  return out
}

test('replicant put VOL DIR PATH and get VOL PATH -o DIR: the whole tree in one command each, modes and mtimes kept', async t => {
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'v' })
  const src = await tmpDir(t)
  await mkdir(join(src, 'x', 'y', 'z'), { recursive: true })
  const names = ['a.txt', 'x/b.bin', 'x/y/c', 'x/y/z/deep.dat', 'x/empty', 'x/y/naïve.txt']
  for (let i = 0; i < 30; i++) names.push(`x/y/many-${i}`)
  for (const [i, n] of names.entries()) {
    await writeFile(join(src, n), randomBytes(n === 'x/empty' ? 0 : n === 'x/b.bin' ? 2_500_000 : 100 + i * 37))
    await utimes(join(src, n), 1_600_000_000.25 + i, 1_600_000_000.25 + i)
  }
  await chmod(join(src, 'a.txt'), 0o750)
  await symlink('a.txt', join(src, 'link'))

  const put = await runCli(['put', 'v', src, '/backup'], { dataDir: node.dataDir })
  t.is(put.code, 0, put.stderr)
  t.regex(put.stdout, new RegExp(`stored in v:/backup ${names.length} files`))
  t.regex(put.stdout, /1 skipped/)
  t.regex(put.stderr, /skipped link: not a regular file/)
  t.false(put.stderr.includes('\r'), 'no progress bar when stderr is not a terminal')
  const listed = (await clientOf(node).list('v', '/backup/')).files
  t.is(listed.length, names.length)

  const out = join(await tmpDir(t), 'restored')
  const get = await runCli(['get', 'v', '/backup', '-o', out], { dataDir: node.dataDir })
  t.is(get.code, 0, get.stderr)
  t.regex(get.stdout, new RegExp(`wrote v:/backup to ${out}: ${names.length} files`))
  t.deepEqual(await tree(out), await tree(src))

  // A sub-directory, named with a trailing slash.
  const sub = join(await tmpDir(t), 'sub')
  t.is((await runCli(['get', 'v', '/backup/x/y/', '-o', sub, '--parallel', '3'], { dataDir: node.dataDir })).code, 0)
  t.deepEqual(Object.keys(await tree(sub)).sort(), Object.keys(await tree(join(src, 'x', 'y'))).sort())
  // A directory without -o is an error, not a dump of bytes.
  const noOut = await runCli(['get', 'v', '/backup'], { dataDir: node.dataDir })
  t.is(noOut.code, 1)
  t.regex(noOut.stderr, /is a directory: give -o LOCALDIR/)
})

test('replicant put of a tree: a file the node refuses is reported, the rest is stored, the exit is non-zero', async t => {
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'v' })
  const src = await tmpDir(t)
  for (let i = 0; i < 10; i++) await writeFile(join(src, `ok-${i}`), `file ${i}`)
  // A backslash is fine in a local name and refused in a volume path (core/paths.ts).
  await writeFile(join(src, 'bad\\name'), 'refused')
  const put = await runCli(['put', 'v', src, '/t'], { dataDir: node.dataDir })
  t.is(put.code, 1)
  t.regex(put.stderr, /failed bad\\name: .*backslash/)
  t.regex(put.stdout, /stored in v:\/t 10 files, .*; 1 failed/, put.stderr)
  t.is((await clientOf(node).list('v', '/t/')).files.length, 10)
})

test('replicant get of a tree made over WebDAV: folder markers become directories (an empty one too), not files', async t => {
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'w' })
  for (const p of ['/dav/w/t', '/dav/w/t/sub', '/dav/w/t/sub/empty']) t.is((await httpRequest(node.apiUrl!, { method: 'MKCOL', path: p })).status, 201)
  const data = randomBytes(5000)
  t.is((await httpRequest(node.apiUrl!, { method: 'PUT', path: '/dav/w/t/sub/f.bin', body: data })).status, 201)
  // PATH without a trailing slash names the folder by its marker; with one, by the prefix.
  for (const path of ['/t', '/t/']) {
    const out = join(await tmpDir(t), 'out')
    const got = await runCli(['get', 'w', path, '-o', out], { dataDir: node.dataDir })
    t.is(got.code, 0, got.stderr)
    t.regex(got.stdout, /1 files/)
    t.true((await stat(join(out, 'sub', 'empty'))).isDirectory(), `${path}: the empty folder is a directory`)
    t.deepEqual(Object.keys(await tree(out)), ['sub/f.bin'])
    t.deepEqual(await readFile(join(out, 'sub', 'f.bin')), data)
  }
})
