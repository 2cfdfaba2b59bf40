import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startNode, tmpDir, runCli, waitFor, sha256File, writeRandomFile, type CliResult } from './helpers.js'

/** Runs a command with --json: exit 0, and stdout is exactly one JSON value. */
async function json (t: ExecutionContext, dataDir: string, args: string[]): Promise<any> {
  const r: CliResult = await runCli([...args, '--json'], { dataDir })
  t.is(r.code, 0, `${args.join(' ')}: exit 0 (stderr: ${r.stderr})`)
  try {
    return JSON.parse(r.stdout)
  } catch {
    t.fail(`${args.join(' ')} --json: stdout is not one JSON value: ${r.stdout}`)
  }
}

// Issue 17: `--json` everywhere output is structured. Each command's JSON carries the figures
// its sentence shows, so a script never parses the sentence.
test('--json on the commands that change things: volume, file, snapshot, dump, restore, gc and member changes print one JSON value', async t => {
  t.timeout(120_000)
  const a = await startNode(t)
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  const work = await tmpDir(t)
  const d = a.dataDir

  const created = await json(t, d, ['volume', 'create', 'jv'])
  t.like(created, { name: 'jv', generation: 1, writeMode: 'active' })
  t.is(typeof created.id, 'string')

  const local = await writeRandomFile(work, 'one.bin', 100_000)
  const put = await json(t, d, ['put', 'jv', local.path, '/one.bin'])
  t.like(put, { path: '/one.bin', size: 100_000 })
  t.true(put.chunks > 0 && put.seq > 0, JSON.stringify(put))

  const tree = join(work, 'tree')
  await mkdir(join(tree, 'sub'), { recursive: true })
  await writeFile(join(tree, 'a.txt'), 'a')
  await writeFile(join(tree, 'sub', 'b.txt'), 'bb')
  t.like(await json(t, d, ['put', 'jv', tree, '/t']), { files: 2, bytes: 3, failed: 0 })

  const got = await json(t, d, ['get', 'jv', '/one.bin', '-o', join(work, 'back.bin')])
  t.like(got, { volume: 'jv', path: '/one.bin', bytes: 100_000, status: 200, range: null })
  t.is(await sha256File(join(work, 'back.bin')), local.sha256)
  t.like(await json(t, d, ['get', 'jv', '/one.bin', '-o', join(work, 'part.bin'), '--range', 'bytes=10-19']), { bytes: 10, status: 206, range: 'bytes 10-19/100000' })
  t.like(await json(t, d, ['get', 'jv', '/t/', '-o', join(work, 'tree-back')]), { files: 2, bytes: 3, failed: 0 })
  const toStdout = await runCli(['get', 'jv', '/one.bin', '--json'], { dataDir: d })
  t.not(toStdout.code, 0, 'get --json without -o is refused: stdout would mix bytes and JSON')
  t.regex(toStdout.stderr, /--json needs -o/)

  t.like(await json(t, d, ['rm', 'jv', '/t/a.txt']), { path: '/t/a.txt' })

  const snap = await json(t, d, ['snapshot', 'create', 'jv', 's1'])
  t.like(snap, { name: 's1' })
  const dumpFile = join(work, 'jv.dump')
  const dumped = await json(t, d, ['dump', 'jv', '--snapshot', 's1', '-o', dumpFile])
  t.like(dumped, { volume: 'jv', snapshot: 's1', since: null, output: dumpFile })
  t.true(dumped.bytes > 100_000, `dump size ${dumped.bytes as number}`)
  t.like(await json(t, d, ['snapshot', 'delete', 'jv', 's1']), { volume: 'jv', snapshot: 's1' })
  // Restored on b, where jv does not exist yet: a full dump creates it with the same id.
  t.like(await json(t, b.dataDir, ['restore', dumpFile]), { volume: 'jv', volumeId: created.id, incremental: false, snapshot: 's1', files: 2 })

  const gc = await json(t, d, ['gc', '--young', '0'])
  t.is(typeof gc.scanned, 'number')
  t.is(typeof gc.deleted, 'number')

  // Member changes on a fresh volume, so that b is not already holding it from the restore.
  await json(t, d, ['volume', 'create', 'mv'])
  const added = await json(t, d, ['volume', 'add-replica', 'mv', b.peerId])
  t.like(added, { name: 'mv', generation: 2 })
  t.deepEqual([...added.members].sort(), [a.peerId, b.peerId].sort())
  t.true(Array.isArray(added.announce), 'each member\'s answer is in the JSON')
  t.like(await json(t, d, ['volume', 'set', 'mv', '--write-mode', 'all']), { writeMode: 'all', generation: 3 })
  await waitFor(async () => (await b.volumeInfo('mv')).generation === 3 ? true : undefined)
  const removed = await json(t, d, ['volume', 'remove-replica', 'mv', b.peerId])
  t.deepEqual(removed.members, [a.peerId])
  await waitFor(async () => (await b.volumeInfo('mv')).state === 'removed' ? true : undefined)
  t.like(await json(t, b.dataDir, ['volume', 'drop', 'mv']), { name: 'mv' })

  const granted = await json(t, d, ['volume', 'grant', 'jv', b.peerId])
  t.deepEqual(granted.readers, [b.peerId])
  t.deepEqual((await json(t, d, ['volume', 'revoke', 'jv', b.peerId])).readers ?? [], [], 'no reader left')
  const compacted = await json(t, d, ['volume', 'compact-log', 'jv'])
  t.like(compacted, { volume: 'jv' })
  t.is(typeof compacted.purged, 'number')
})
