/**
 * Files at rest: a node's data dir is private to its user (dirs 0700, files without group or
 * other bits) whatever mode the dir had before; see node/data-dir.ts for the three layers.
 */
import '../core/polyfill.js'
import test from 'ava'
import { mkdir, chmod, stat, readdir, lstat, writeFile, symlink, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { randomBytes } from 'node:crypto'
import { startNode, tmpDir, runCli, spawnNodeProcess, clientOf } from './helpers.js'
import { bytes } from './replication-helpers.js'
import { makeTreePrivate } from '../node/data-dir.js'

/** Every entry under `dir` (itself included) with its permission bits, symlinks not followed. */
async function walk (dir: string): Promise<Array<{ path: string, mode: number, dir: boolean }>> {
  const st = await lstat(dir)
  const here = [{ path: dir, mode: st.mode & 0o777, dir: st.isDirectory() }]
  if (!st.isDirectory()) return here
  for (const name of await readdir(dir)) here.push(...await walk(join(dir, name)))
  return here
}

/** The entries that group or others may read, write or enter. */
async function exposed (dir: string): Promise<string[]> {
  return (await walk(dir)).filter(e => (e.mode & 0o077) !== 0).map(e => `${e.path} ${e.mode.toString(8)}`)
}

async function mode (path: string): Promise<number> { return (await stat(path)).mode & 0o777 }

/** A data dir made 0755 beforehand, as `mkdir` under the usual umask 022 leaves it. */
async function openDir (parent: string): Promise<string> {
  const dir = join(parent, 'data')
  await mkdir(dir)
  await chmod(dir, 0o755)
  return dir
}

test('replicant start: a data dir made 0755 beforehand ends 0700, and after a write nothing under it is readable by others', async t => {
  const dir = await openDir(await tmpDir(t))
  const node = await spawnNodeProcess(t, dir)
  const c = clientOf(node)
  await c.createVolume({ name: 'v' })
  await c.put('v', '/plain.txt', Readable.from([Buffer.from('plaintext that only the owner may read')]))
  t.is(await mode(dir), 0o700)
  const files = (await walk(dir)).filter(e => !e.dir).map(e => e.path)
  t.true(files.some(f => /pack-\d+\.dat$/.test(f)), 'a pack file was written')
  t.true(files.some(f => f.endsWith('identity.key')))
  t.true(files.some(f => f.endsWith('api.json')))
  t.true(files.some(f => /store\/(LOG|CURRENT|MANIFEST-\d+)$/.test(f)), 'level\'s own files are there too')
  t.deepEqual(await exposed(dir), [])
  // What level creates later (flushes, compactions) follows the process umask: 077 in a node process.
  const umask = await readFile(`/proc/${node.proc.pid!}/status`, 'utf8').then(s => /^Umask:\s*(\d+)/m.exec(s)?.[1], () => undefined)
  if (umask !== undefined) t.is(umask, '0077')
  await node.kill()
  t.deepEqual(await exposed(dir), [], 'and still after a clean stop')
})

test('replicant init: a 0755 data dir ends 0700 with nothing exposed', async t => {
  const dir = await openDir(await tmpDir(t))
  const r = await runCli(['init'], { dataDir: dir })
  t.is(r.code, 0, r.stderr)
  t.is(await mode(dir), 0o700)
  t.deepEqual(await exposed(dir), [])
})

test('in-process node: dir 0700, its own files 0600, and files an older version left 0644 are made private at start', async t => {
  const dir = await openDir(await tmpDir(t))
  // A first run as an older version would have left it: everything readable by others.
  const first = await startNode(t, { dataDir: dir })
  await first.stop()
  await chmod(dir, 0o755)
  for (const e of await walk(dir)) await chmod(e.path, e.dir ? 0o755 : 0o644)
  // Something of the operator's own in the dir is not the node's to change.
  await writeFile(join(dir, 'notes.txt'), 'mine', { mode: 0o644 })
  await chmod(join(dir, 'notes.txt'), 0o644)
  t.not((await exposed(dir)).length, 0)

  // Small packs: the ones rolled while it runs are made by this process (umask 022), 0600 all the same.
  const node = await startNode(t, { dataDir: dir, packTargetBytes: 65536 })
  await node.createVolume({ name: 'v' })
  const packs = async (): Promise<number> => (await readdir(join(dir, 'chunks'))).filter(f => f.endsWith('.dat')).length
  const before = await packs()
  for (const name of ['/a.bin', '/b.bin', '/c.bin']) await node.volumes.putFile('v', name, bytes(randomBytes(200 * 1024)))
  t.true(await packs() > before, 'packs were rolled after start')
  t.is(await mode(dir), 0o700)
  t.is(await mode(join(dir, 'identity.key')), 0o600)
  t.is(await mode(join(dir, 'api.json')), 0o600)
  t.is(await mode(join(dir, 'store')), 0o700)
  t.is(await mode(join(dir, 'chunks')), 0o700)
  for (const f of await readdir(join(dir, 'chunks'))) t.is(await mode(join(dir, 'chunks', f)), 0o600, f)
  // Level's files from the first run were made private at start (new ones it makes while this
  // in-process node runs follow the test process's umask, inside the 0700 dir).
  t.is(await mode(join(dir, 'store', 'CURRENT')), 0o600)
  t.deepEqual(await exposed(dir), [`${join(dir, 'notes.txt')} 644`], 'only the operator\'s file keeps its mode')
})

test('makeTreePrivate keeps owner bits, drops the others, and leaves symlinks alone', async t => {
  const dir = await tmpDir(t)
  await mkdir(join(dir, 'sub'), { mode: 0o775 })
  await writeFile(join(dir, 'sub', 'x'), '', { mode: 0o664 })
  await writeFile(join(dir, 'ro'), '', { mode: 0o444 })
  await writeFile(join(dir, 'exec'), '', { mode: 0o755 })
  await chmod(join(dir, 'sub', 'x'), 0o664)
  await chmod(join(dir, 'ro'), 0o444)
  await chmod(join(dir, 'exec'), 0o755)
  const outside = join(await tmpDir(t), 'elsewhere')
  await writeFile(outside, '', { mode: 0o644 })
  await chmod(outside, 0o644)
  await symlink(outside, join(dir, 'link'))
  t.is(await makeTreePrivate(dir), 4)
  t.is(await mode(outside), 0o644, 'a link is not followed out of the dir')
  t.is(await mode(join(dir, 'sub')), 0o700)
  t.is(await mode(join(dir, 'sub', 'x')), 0o600)
  t.is(await mode(join(dir, 'ro')), 0o400)
  t.is(await mode(join(dir, 'exec')), 0o700)
  t.is(await makeTreePrivate(dir), 0, 'idempotent')
})
