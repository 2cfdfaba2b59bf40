import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { stat, readFile, readdir, chmod, utimes, access, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { randomBytes } from 'node:crypto'
import { tmpDir, closedPort, runCli, spawnNodeProcess, writeRandomFile, sha256File, sha256Hex, BIN, LOOPBACK, type CliResult } from './helpers.js'

const exists = async (p: string): Promise<boolean> => await access(p).then(() => true, () => false)

function assertFails (t: ExecutionContext, r: CliResult, code: string | RegExp, label: string): void {
  t.not(r.code, 0, `${label}: non-zero exit`)
  t.is(r.signal, null, `${label}: exited, not killed`)
  t.notRegex(r.stderr, /^\s+at /m, `${label}: reported cleanly, without a stack trace`)
  if (typeof code === 'string') t.true(r.stderr.includes(`[${code}]`), `${label}: stderr names ${code}: ${r.stderr}`)
  else t.regex(r.stderr, code, label)
}

function assertOk (t: ExecutionContext, r: CliResult, label: string): void {
  t.is(r.code, 0, `${label}: exit 0 (stderr: ${r.stderr})`)
}

/**
 * Runs `replicant start` expecting it to fail. If it starts serving instead, it is killed and
 * reported as started (so a broken lock fails the test instead of hanging it).
 */
async function startExpectingFailure (t: ExecutionContext, dataDir: string): Promise<{ started: boolean, code: number | null, stderr: string }> {
  const proc = spawn(process.execPath, [BIN, '--data', dataDir, 'start', '--listen', LOOPBACK, '--api', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const closed = once(proc, 'close')
  t.teardown(async () => { if (proc.exitCode === null && proc.signalCode === null) { proc.kill('SIGKILL'); await closed } })
  let out = ''
  let err = ''
  proc.stderr.setEncoding('utf8').on('data', (s: string) => { err += s })
  const started = new Promise<boolean>(resolve => {
    proc.stdout.setEncoding('utf8').on('data', (s: string) => { out += s; if (out.includes('api: ')) resolve(true) })
    proc.once('close', () => resolve(false))
  })
  if (await started) {
    proc.kill('SIGKILL')
    await closed
    return { started: true, code: null, stderr: err }
  }
  const [code] = await closed as [number | null]
  return { started: false, code, stderr: err }
}

test('init prints a peer id and creates identity.key with mode 0600; init again keeps it', async t => {
  const dataDir = join(await tmpDir(t), 'not', 'yet', 'there')
  const r = await runCli(['init'], { dataDir })
  assertOk(t, r, 'init')
  const m = /peer id: (12D3KooW[1-9A-HJ-NP-Za-km-z]+)/.exec(r.stdout)
  t.truthy(m, r.stdout)
  t.regex(r.stdout, /^initialised /)
  const st = await stat(join(dataDir, 'identity.key'))
  t.is(st.mode & 0o777, 0o600)
  t.true(st.size > 0)
  t.true((await stat(join(dataDir, 'store'))).isDirectory())

  const again = await runCli(['init'], { dataDir })
  assertOk(t, again, 'second init')
  t.regex(again.stdout, /^already initialised /)
  t.true(again.stdout.includes(`peer id: ${m![1]}`), 'same identity')
})

test('init and start refuse a corrupted identity.key and leave it untouched', async t => {
  const dataDir = await tmpDir(t)
  const garbage = Buffer.from('definitely not a protobuf private key')
  await writeFile(join(dataDir, 'identity.key'), garbage, { mode: 0o600 })
  assertFails(t, await runCli(['init'], { dataDir }), /^replicant: /m, 'init')
  assertFails(t, await runCli(['start', '--listen', LOOPBACK, '--api', '127.0.0.1:0'], { dataDir }), /^replicant: /m, 'start')
  t.true((await readFile(join(dataDir, 'identity.key'))).equals(garbage), 'the key file was not replaced')
  t.false(await exists(join(dataDir, 'api.json')))
})

test('start initialises a fresh dir; a second start on it fails with DATA_DIR_LOCKED while the first keeps serving', async t => {
  const dataDir = join(await tmpDir(t), 'fresh')
  const first = await spawnNodeProcess(t, dataDir)
  t.is((await stat(join(dataDir, 'identity.key'))).mode & 0o777, 0o600)
  t.true(first.stdout().includes(`peer id: ${first.peerId}`))
  t.regex(first.stdout(), /listening: \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)

  const second = await startExpectingFailure(t, dataDir)
  t.false(second.started, 'the second node must not start')
  t.not(second.code, 0)
  t.true(second.stderr.includes('[DATA_DIR_LOCKED]'), second.stderr)

  // The first node still serves, and api.json still points at it.
  const info = JSON.parse(await readFile(join(dataDir, 'api.json'), 'utf8'))
  t.is(info.pid, first.proc.pid)
  const status = await runCli(['status', '--json'], { dataDir })
  assertOk(t, status, 'status')
  t.is(JSON.parse(status.stdout).peerId, first.peerId)
  assertOk(t, await runCli(['volume', 'create', 'still-here'], { dataDir }), 'volume create after failed second start')
})

test('volume create, list and info', async t => {
  const dataDir = await tmpDir(t)
  await spawnNodeProcess(t, dataDir)
  const created = await runCli(['volume', 'create', 'photos'], { dataDir })
  assertOk(t, created, 'create')
  t.regex(created.stdout, /^created volume photos \(id [0-9a-f]{32}, generation 1, write mode active\)/)
  assertOk(t, await runCli(['volume', 'create', 'docs', '--write-mode', 'all', '--chunk-size', '4096'], { dataDir }), 'create docs')

  const list = await runCli(['volume', 'list'], { dataDir })
  assertOk(t, list, 'list')
  const names = list.stdout.trim().split('\n').map(l => l.split('\t')[0]).sort()
  t.deepEqual(names, ['docs', 'photos'])
  const listJson = await runCli(['volume', 'list', '--json'], { dataDir })
  const vols = JSON.parse(listJson.stdout)
  t.deepEqual(vols.map((v: { name: string }) => v.name).sort(), ['docs', 'photos'])

  const info = await runCli(['volume', 'info', 'docs', '--json'], { dataDir })
  assertOk(t, info, 'info')
  t.like(JSON.parse(info.stdout), { name: 'docs', writeMode: 'all', chunkSize: 4096, files: 0, bytes: 0, seq: 0 })
  const text = await runCli(['volume', 'info', 'photos'], { dataDir })
  t.regex(text.stdout, /^name: +photos$/m)
  t.regex(text.stdout, /^chunk size: +64\.0 KiB$/m)
})

test('put, get (-o and stdout), ls and rm round trip', async t => {
  const dataDir = await tmpDir(t)
  const work = await tmpDir(t)
  await spawnNodeProcess(t, dataDir)
  assertOk(t, await runCli(['volume', 'create', 'v'], { dataDir }), 'create')
  const local = await writeRandomFile(work, 'local.bin', 200 * 1024 + 3)
  await chmod(local.path, 0o640)
  await utimes(local.path, new Date(1_650_000_000_000), new Date(1_650_000_000_000))

  const put = await runCli(['put', 'v', local.path, '/dir/f.bin'], { dataDir })
  assertOk(t, put, 'put')
  t.regex(put.stdout, /^stored v:\/dir\/f\.bin \(204803 bytes, 4 chunks, seq 1\)/)
  const stdinData = randomBytes(70 * 1024)
  assertOk(t, await runCli(['put', 'v', '-', 'dir/stdin.bin', '--mode', '600'], { dataDir, input: stdinData }), 'put from stdin')
  assertOk(t, await runCli(['put', 'v', local.path, 'other/x', '--mode', '755'], { dataDir }), 'put other')

  const out = join(work, 'out.bin')
  assertOk(t, await runCli(['get', 'v', '/dir/f.bin', '-o', out], { dataDir }), 'get -o')
  t.is(await sha256File(out), local.sha256)
  t.deepEqual((await readdir(work)).sort(), ['local.bin', 'out.bin'], 'no temporary file left')

  const toStdout = await runCli(['get', 'v', 'dir/stdin.bin'], { dataDir })
  assertOk(t, toStdout, 'get to stdout')
  t.is(sha256Hex(toStdout.stdoutBytes), sha256Hex(stdinData))
  const ranged = await runCli(['get', 'v', 'dir/f.bin', '--range', 'bytes=65530-65545'], { dataDir })
  assertOk(t, ranged, 'get --range')
  t.true(ranged.stdoutBytes.equals(local.bytes!.subarray(65530, 65546)))

  const ls = await runCli(['ls', 'v', '--json'], { dataDir })
  assertOk(t, ls, 'ls --json')
  const files = JSON.parse(ls.stdout)
  t.deepEqual(files.map((f: { path: string }) => f.path), ['/dir/f.bin', '/dir/stdin.bin', '/other/x'])
  t.like(files[0], { size: 204803, mode: 0o640, mtime: 1_650_000_000_000, chunks: 4 })
  t.like(files[1], { size: 70 * 1024, mode: 0o600 })
  t.like(files[2], { mode: 0o755 })
  const lsPrefix = await runCli(['ls', 'v', '/dir/', '--json'], { dataDir })
  t.deepEqual(JSON.parse(lsPrefix.stdout).map((f: { path: string }) => f.path), ['/dir/f.bin', '/dir/stdin.bin'])
  const lsText = await runCli(['ls', 'v', 'other'], { dataDir })
  assertOk(t, lsText, 'ls text')
  t.regex(lsText.stdout, /^0755\t +204803\t2022-04-15T05:20:00\.000Z\t\/other\/x\n$/)

  const rm = await runCli(['rm', 'v', '/dir/f.bin'], { dataDir })
  assertOk(t, rm, 'rm')
  t.regex(rm.stdout, /^removed v:\/dir\/f\.bin \(seq 4\)/)
  assertFails(t, await runCli(['get', 'v', '/dir/f.bin'], { dataDir }), 'FILE_NOT_FOUND', 'get after rm')
  t.deepEqual(JSON.parse((await runCli(['ls', 'v', '--json'], { dataDir })).stdout).map((f: { path: string }) => f.path), ['/dir/stdin.bin', '/other/x'])
})

test('bad inputs exit non-zero with the error code on stderr, and change nothing', async t => {
  const dataDir = await tmpDir(t)
  const work = await tmpDir(t)
  const idle = await tmpDir(t)
  await spawnNodeProcess(t, dataDir)
  assertOk(t, await runCli(['volume', 'create', 'v'], { dataDir }), 'create')
  const local = await writeRandomFile(work, 'local.bin', 1000)
  assertOk(t, await runCli(['put', 'v', local.path, '/f'], { dataDir }), 'put')
  const out = join(work, 'never.bin')

  const cases: Array<[string, string[], string | RegExp, string?]> = [
    ['bad volume name', ['volume', 'create', 'Bad Name'], 'BAD_VOLUME_NAME'],
    ['duplicate volume', ['volume', 'create', 'v'], 'VOLUME_EXISTS'],
    ['bad chunk size', ['volume', 'create', 'w', '--chunk-size', '1000'], 'BAD_REQUEST'],
    ['info of unknown volume', ['volume', 'info', 'nope'], 'VOLUME_NOT_FOUND'],
    ['put to unknown volume', ['put', 'nope', local.path, '/a'], 'VOLUME_NOT_FOUND'],
    ['put with ..', ['put', 'v', local.path, '../escape'], 'BAD_PATH'],
    ['put with empty segment', ['put', 'v', local.path, 'a//b'], 'BAD_PATH'],
    ['put with a bad mode', ['put', 'v', local.path, '/m', '--mode', 'rwx'], 'BAD_REQUEST'],
    ['put of a missing local file', ['put', 'v', join(work, 'absent'), '/a'], /ENOENT|no such file/i],
    // A directory is stored as a tree (test/cli-tree.test.ts); its PATH is checked before any file goes.
    ['put of a directory under a bad path', ['put', 'v', work, '/a/../b'], 'BAD_PATH'],
    ['get of a missing file', ['get', 'v', '/missing'], 'FILE_NOT_FOUND'],
    ['get -o of a missing file', ['get', 'v', '/missing', '-o', out], 'FILE_NOT_FOUND'],
    ['get -o into a missing directory', ['get', 'v', '/f', '-o', join(work, 'no', 'such', 'dir', 'x')], /^replicant: .*ENOENT/m],
    ['get of an unsatisfiable range', ['get', 'v', '/f', '--range', 'bytes=5000-'], 'BAD_RANGE'],
    // Ranges the server would ignore (whole file sent): refused, not a silent whole-file write.
    ['get of a range without a unit', ['get', 'v', '/f', '--range', '0-10'], /did you mean --range bytes=0-10\?\) \[BAD_RANGE\]/],
    ['get of a garbage range', ['get', 'v', '/f', '--range', 'garbage'], 'BAD_RANGE'],
    ['get of several ranges', ['get', 'v', '/f', '--range', 'bytes=0-10,20-30'], /only one range is supported \[BAD_RANGE\]/],
    ['get -o of a garbage range', ['get', 'v', '/f', '-o', out, '--range', 'garbage'], 'BAD_RANGE'],
    ['ls of unknown volume', ['ls', 'nope'], 'VOLUME_NOT_FOUND'],
    ['ls with .. prefix', ['ls', 'v', '../x'], 'BAD_PATH'],
    ['rm of a missing file', ['rm', 'v', '/missing'], 'FILE_NOT_FOUND'],
    ['unknown command', ['frobnicate'], /unknown command/i],
    ['missing argument', ['put', 'v'], /missing required argument/i],
    ['no node running on the data dir', ['ls', 'v'], 'NODE_NOT_RUNNING', idle],
    ['no node at --api-url', ['--api-url', `http://127.0.0.1:${await closedPort()}`, 'volume', 'list'], 'NODE_NOT_RUNNING', idle]
  ]
  // A few at a time: each is a separate process.
  for (let i = 0; i < cases.length; i += 4) {
    await Promise.all(cases.slice(i, i + 4).map(async ([label, args, code, dir]) => {
      assertFails(t, await runCli(args, { dataDir: dir ?? dataDir }), code, label)
    }))
  }
  t.false(await exists(out), 'get -o of a missing file creates no output')
  t.false(await exists(`${out}.replicant-part`), 'get -o of a missing file leaves no temporary file')

  const ls = JSON.parse((await runCli(['ls', 'v', '--json'], { dataDir })).stdout)
  t.deepEqual(ls.map((f: { path: string }) => f.path), ['/f'])
  const vols = JSON.parse((await runCli(['volume', 'list', '--json'], { dataDir })).stdout)
  t.deepEqual(vols.map((v: { name: string }) => v.name), ['v'])
  const got = await runCli(['get', 'v', '/f'], { dataDir })
  t.true(got.stdoutBytes.equals(local.bytes!))
})

test('SIGTERM stops cleanly and a restart keeps volumes, files and peer id', async t => {
  const dataDir = await tmpDir(t)
  const work = await tmpDir(t)
  const first = await spawnNodeProcess(t, dataDir)
  assertOk(t, await runCli(['volume', 'create', 'keep'], { dataDir }), 'create')
  const local = await writeRandomFile(work, 'data.bin', 150 * 1024)
  assertOk(t, await runCli(['put', 'keep', local.path, '/data.bin'], { dataDir }), 'put')

  const exit = await first.kill('SIGTERM')
  t.is(exit.code, 0, first.stderr())
  t.is(exit.signal, null)
  t.regex(first.stdout(), /SIGTERM: stopping/)
  t.false(await exists(join(dataDir, 'api.json')), 'api.json removed')
  assertFails(t, await runCli(['ls', 'keep'], { dataDir }), 'NODE_NOT_RUNNING', 'ls while stopped')

  // The lock was released: a new node starts on the same dir, with the same identity.
  const second = await spawnNodeProcess(t, dataDir)
  t.is(second.peerId, first.peerId)
  const status = JSON.parse((await runCli(['status', '--json'], { dataDir })).stdout)
  t.is(status.peerId, first.peerId)
  t.deepEqual(status.uncleanShutdown, [])
  t.false(second.stdout().includes('not shut down cleanly'), second.stdout())
  t.deepEqual(status.volumes.map((v: { name: string }) => v.name), ['keep'])
  const out = join(work, 'back.bin')
  assertOk(t, await runCli(['get', 'keep', '/data.bin', '-o', out], { dataDir }), 'get after restart')
  t.is(await sha256File(out), local.sha256)
  const ls = JSON.parse((await runCli(['ls', 'keep', '--json'], { dataDir })).stdout)
  t.like(ls[0], { path: '/data.bin', size: 150 * 1024, seq: 1 })

  // SIGINT stops cleanly too.
  const exit2 = await second.kill('SIGINT')
  t.is(exit2.code, 0, second.stderr())
  t.false(await exists(join(dataDir, 'api.json')))
})

test('start on a busy API port fails cleanly, writes no api.json and releases the data dir', async t => {
  const dataDir = await tmpDir(t)
  const busy = createServer()
  busy.listen(0, '127.0.0.1')
  await once(busy, 'listening')
  t.teardown(() => { busy.close() })
  const port = (busy.address() as { port: number }).port
  const r = await runCli(['start', '--listen', LOOPBACK, '--api', `127.0.0.1:${port}`], { dataDir })
  assertFails(t, r, /EADDRINUSE/, 'start on a busy port')
  t.false(await exists(join(dataDir, 'api.json')))
  assertFails(t, await runCli(['start', '--listen', LOOPBACK, '--api', 'nonsense'], { dataDir }), 'BAD_REQUEST', 'start with a malformed --api')
  // The failed starts released the store lock.
  const node = await spawnNodeProcess(t, dataDir)
  t.is((await node.kill('SIGTERM')).code, 0)
})

test('start on a taken libp2p port: a one-line error, and the data dir it was initialising is taken back', async t => {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const port = (server.address() as { port: number }).port
  const parent = await tmpDir(t)
  const fresh = join(parent, 'node')
  const r = await runCli(['start', '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--api', '127.0.0.1:0'], { dataDir: fresh })
  assertFails(t, r, 'ADDRESS_IN_USE', 'start on a taken port')
  t.is(r.stderr.trim().split('\n').length, 1, r.stderr)
  t.regex(r.stderr, new RegExp(`/ip4/127\\.0\\.0\\.1/tcp/${port} already in use`))
  t.false(await exists(fresh), 'the data dir this start created is gone')

  // A data dir that was initialised before is left as it was.
  const used = await tmpDir(t)
  t.is((await runCli(['init'], { dataDir: used })).code, 0)
  const before = (await readdir(used)).sort()
  assertFails(t, await runCli(['start', '--listen', `/ip4/127.0.0.1/tcp/${port}`, '--api', '127.0.0.1:0'], { dataDir: used }), 'ADDRESS_IN_USE', 'again')
  t.deepEqual((await readdir(used)).sort(), before)
})
