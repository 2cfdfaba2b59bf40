/**
 * `replicant mount VOLUME DIR` (issue 18): the command it prints, the volume checked before
 * anything is mounted, and, where the machine allows it (root, davfs2 installed, /dev/fuse),
 * a real davfs2 mount: files copied in reach the node's index, files the node holds read back
 * through the mount byte for byte. Skipped, and shown as skipped, where it cannot mount.
 */
import '../core/polyfill.js'
import test from 'ava'
import { existsSync } from 'node:fs'
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { startNode, tmpDir, runCli, clientOf, sha256Hex } from './helpers.js'
import { read } from './replication-helpers.js'
import { run } from './webdav-clients.js'

const canMount = process.platform === 'linux' && process.getuid?.() === 0 && existsSync('/dev/fuse') &&
  ['/usr/sbin/mount.davfs', '/sbin/mount.davfs'].some(p => existsSync(p))

test('mount --print names the volume\'s WebDAV URL and davfs2\'s buf_size; an unknown volume is refused before any mount', async t => {
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'pics' })
  const dir = await tmpDir(t)
  const printed = await runCli(['mount', 'pics', dir, '--print'], { dataDir: node.dataDir })
  t.is(printed.code, 0, printed.stderr)
  t.true(printed.stdout.includes(`mount -t davfs`), printed.stdout)
  t.true(printed.stdout.includes(`${node.apiUrl!}/dav/pics/ ${dir}`), printed.stdout)
  t.regex(printed.stdout, /buf_size 64/)
  t.false(printed.stdout.includes(node.apiToken!), 'the token is not printed')
  const unknown = await runCli(['mount', 'nope', dir], { dataDir: node.dataDir })
  t.is(unknown.code, 1)
  t.regex(unknown.stderr, /VOLUME_NOT_FOUND/)
  t.deepEqual(await readdir(dir), [], 'nothing mounted')
})

;(canMount ? test : test.skip)('a davfs2 mount: cp in, ls -R and sha256 through it, the files in the node\'s index', async t => {
  t.timeout(180_000)
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'm' })
  const held = randomBytes(1_500_000)
  await clientOf(node).put('m', '/held/by-node.bin', Readable.from([held]))
  const work = await tmpDir(t)
  const mnt = join(work, 'mnt')
  await mkdir(mnt)
  let mounted = false
  t.teardown(async () => { if (mounted) await run('umount', ['-l', mnt]) })

  const m = await runCli(['mount', 'm', mnt], { dataDir: node.dataDir })
  t.is(m.code, 0, m.stderr)
  mounted = true
  t.regex(m.stdout, /mounted m at /)
  // A file the node holds, read through the mount.
  t.is(sha256Hex(await readFile(join(mnt, 'held', 'by-node.bin'))), sha256Hex(held))
  // A small tree copied in with cp -r (an empty folder, a name with a space and non-ASCII).
  const src = join(work, 'src')
  const files: Record<string, Buffer> = { 'a/one.bin': randomBytes(40_000), 'a/b/two.txt': Buffer.from('two'), 'ünï/with space.txt': Buffer.from('x') }
  for (const [p, b] of Object.entries(files)) {
    await mkdir(join(src, p, '..'), { recursive: true })
    await writeFile(join(src, p), b)
  }
  await mkdir(join(src, 'empty'))
  const cp = await run('cp', ['-r', `${src}/.`, mnt])
  t.is(cp.code, 0, cp.stderr)
  const ls = await run('ls', ['-R', mnt])
  t.is(ls.code, 0, ls.stderr)
  for (const name of ['one.bin', 'two.txt', 'with space.txt', 'empty', 'by-node.bin']) t.true(ls.stdout.includes(name), ls.stdout)
  const sums = await run('sha256sum', Object.keys(files).map(p => join(mnt, p)))
  t.is(sums.code, 0, sums.stderr)
  for (const [p, b] of Object.entries(files)) t.true(sums.stdout.includes(`${sha256Hex(b)}  ${join(mnt, p)}`), sums.stdout)
  // davfs2 uploads on close or at the latest on unmount (which waits for it).
  const um = await run('umount', [mnt])
  t.is(um.code, 0, um.stderr)
  mounted = false
  for (const [p, b] of Object.entries(files)) t.is(sha256Hex(await read(node, 'm', `/${p}`)), sha256Hex(b), p)
  const empty = await node.volumes.stat('m', '/empty')
  t.is(empty.mode & 0o170000, 0o040000, 'the empty folder is a folder marker')
})
