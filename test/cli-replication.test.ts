import '../core/polyfill.js'
import test from 'ava'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { tmpDir, spawnNodeProcess, runCli, waitFor } from './helpers.js'

function multiaddrOf (stdout: string): string {
  const m = /listening: (\S+)/.exec(stdout)
  if (m === null) throw new Error(`no multiaddr in: ${stdout}`)
  return m[1]
}

test('CLI: start --join, volume create --replicas, peers, status, add-replica and volume wait --steady', async t => {
  t.timeout(180_000)
  const dir = await tmpDir(t)
  const [d1, d2, d3] = ['n1', 'n2', 'n3'].map(n => join(dir, n))
  const n1 = await spawnNodeProcess(t, d1)
  const n2 = await spawnNodeProcess(t, d2, ['--join', multiaddrOf(n1.stdout())])
  const peers = await waitFor(async () => {
    const r = await runCli(['peers', '--json'], { dataDir: d1 })
    const list = JSON.parse(r.stdout) as Array<{ peerId: string, connected: boolean }>
    return list.some(p => p.peerId === n2.peerId && p.connected) ? list : undefined
  })
  t.true(peers.length >= 1)

  const created = await runCli(['volume', 'create', 'docs', '--replicas', n2.peerId], { dataDir: d1 })
  t.is(created.code, 0, created.stderr)
  t.regex(created.stdout, new RegExp(`member ${n2.peerId}: created`))

  const file = join(dir, 'report.bin')
  const data = randomBytes(300_000)
  await writeFile(file, data)
  t.is((await runCli(['put', 'docs', file, '/reports/q3.bin'], { dataDir: d1 })).code, 0)
  const got = await waitFor(async () => {
    const r = await runCli(['get', 'docs', '/reports/q3.bin'], { dataDir: d2 })
    return r.code === 0 ? r.stdoutBytes : undefined
  }, 100)
  t.deepEqual(got, data)

  const status = await runCli(['status'], { dataDir: d1 })
  t.is(status.code, 0)
  t.regex(status.stdout, /docs +id [0-9a-f]{32} +gen 1/)
  t.regex(status.stdout, new RegExp(`${n2.peerId} +connected`))

  // A third node, added online; `volume wait --steady` returns once it holds everything.
  const n3 = await spawnNodeProcess(t, d3, ['--join', multiaddrOf(n1.stdout())])
  const added = await runCli(['volume', 'add-replica', 'docs', n3.peerId], { dataDir: d2 })
  t.is(added.code, 0, added.stderr)
  t.regex(added.stdout, /generation 2, 3 members/)
  const waited = await runCli(['volume', 'wait', 'docs', '--steady', '--timeout', '120'], { dataDir: d3 })
  t.is(waited.code, 0, waited.stderr)
  t.regex(waited.stdout, /volume docs is steady \(1 files/)
  const copy = await runCli(['get', 'docs', '/reports/q3.bin'], { dataDir: d3 })
  t.deepEqual(copy.stdoutBytes, data)

  const bad = await runCli(['volume', 'add-replica', 'docs', 'not-a-peer-id'], { dataDir: d1 })
  t.not(bad.code, 0)
  t.regex(bad.stderr, /BAD_REQUEST/)
  const again = await runCli(['volume', 'add-replica', 'docs', n2.peerId], { dataDir: d1 })
  t.regex(again.stderr, /ALREADY_MEMBER/)
  await Promise.all([n1.kill(), n2.kill(), n3.kill()])
})
