import '../core/polyfill.js'
import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { access, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Topology, TopologyError, type TopologyOptions } from '../testing/topology.js'
import { parseTopologyConfig, loadTopologyConfig, startTopologyFromConfig } from '../testing/topology-config.js'
import { ReplicantClient } from '../api/client.js'
import { readApiToken } from '../api/api-token.js'
import { tmpDir, runCli, waitFor, sleep, BIN, DIST } from './helpers.js'

const CONFIG = join(DIST, '..', 'config')

/** A topology closed in teardown, whatever the test did. */
async function topology (t: ExecutionContext, opts: TopologyOptions): Promise<Topology> {
  const topo = await Topology.start(opts)
  t.teardown(async () => { await topo.close() })
  return topo
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

async function exists (path: string): Promise<boolean> {
  return await access(path).then(() => true, () => false)
}

async function paths (topo: Topology, node: string, volume: string): Promise<string[]> {
  return (await topo.list(node, volume)).map(f => f.path)
}

async function connected (topo: Topology, node: string): Promise<Set<string>> {
  const { peers } = await topo.client(node).peers()
  return new Set((peers as Array<{ peerId: string, connected: boolean }>).filter(p => p.connected).map(p => topo.nameOf(p.peerId) ?? p.peerId))
}

test.serial('three process nodes start connected to each other; close stops every process and removes the temp dir', async t => {
  const topo = await topology(t, { nodes: 3 })
  t.deepEqual(topo.names(), ['n1', 'n2', 'n3'])
  const pids = topo.nodes.map(n => n.pid!)
  t.is(new Set([...pids, process.pid]).size, 4, 'each node is its own process')
  for (const n of topo.nodes) {
    t.true(n.running)
    t.true(alive(n.pid!))
    const status = await n.client.status()
    t.is(status.peerId, n.peerId)
    t.is(status.dataDir, n.dataDir)
    t.regex(n.multiaddrs[0], /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
    t.deepEqual([...await connected(topo, n.name)].sort(), topo.names().filter(x => x !== n.name), 'a mesh: every node is connected to every other')
  }
  t.is(new Set(topo.nodes.map(n => n.dataDir)).size, 3)
  const exits = await topo.close()
  t.deepEqual([...exits.values()].map(e => e.code), [0, 0, 0], 'every node stopped cleanly')
  for (const pid of pids) t.false(alive(pid))
  t.false(await exists(topo.dir), 'the temp dir is removed')
  t.throws(() => topo.client('n1'), { code: 'NODE_DOWN' })
})

test.serial('config/five-nodes.json as two processes and three in-process nodes: its volumes on their members, converging; kill needs a process node', async t => {
  const config = await loadTopologyConfig(join(CONFIG, 'five-nodes.json'))
  config.nodes = config.nodes.map((n, i) => i < 2 ? n : { ...n, kind: 'in-process' })
  const topo = await startTopologyFromConfig(config)
  t.teardown(async () => { await topo.close() })
  t.deepEqual(topo.names(), ['n1', 'n2', 'n3', 'n4', 'n5'])
  t.not(topo.node('n1').pid, process.pid)
  t.is(topo.node('n3').pid, process.pid)
  t.truthy(topo.node('n4').instance)
  // Every volume of the file is on exactly its members.
  for (const v of config.volumes) {
    for (const n of topo.names()) {
      const { volumes } = await topo.client(n).listVolumes()
      const held = (volumes as Array<{ name: string, writeMode: string }>).find(x => x.name === v.name)
      t.is(held !== undefined, v.members.includes(n), `${v.name} on ${n}`)
      if (held !== undefined) t.is(held.writeMode, v.writeMode ?? 'active')
    }
  }
  const data = new Map(topo.names().map(n => [`/from-${n}`, randomBytes(3000)]))
  await Promise.all(topo.names().map(async n => await topo.write(n, 'shared', `/from-${n}`, data.get(`/from-${n}`)!)))
  const listing = await topo.waitForConvergence('shared')
  t.deepEqual(listing.map(f => f.path), [...data.keys()].sort())
  for (const n of topo.names()) {
    for (const [p, bytes] of data) t.true((await topo.read(n, 'shared', p)).equals(bytes), `${n} reads ${p}`)
  }
  await topo.write('n5', 'right', '/r', 'right side')
  await topo.waitForConvergence('right', { nodes: ['n3', 'n4', 'n5'] })
  t.is((await topo.read('n3', 'right', '/r')).toString(), 'right side')
  await t.throwsAsync(topo.kill('n3'), { code: 'KILL_NEEDS_PROCESS' })
  await t.throwsAsync(topo.kill('nope'), { code: 'UNKNOWN_NODE' })
  const exits = await topo.close()
  t.is(exits.size, 5)
  t.true([...exits.values()].every(e => e.code === 0))
})

test.serial('partition: the groups cannot exchange data or connect; heal restores both', async t => {
  const topo = await topology(t, { nodes: 3 })
  await topo.createVolume('v')
  await topo.write('n1', 'v', '/before', 'written before the partition')
  await topo.waitForConvergence('v', { nodes: topo.names() })
  t.deepEqual(await paths(topo, 'n3', 'v'), ['/before'])

  await topo.partition(['n1'], ['n2', 'n3'])
  t.deepEqual(topo.partitions(), [['n1'], ['n2', 'n3']])
  t.deepEqual((await topo.client('n1').faults()).blocked, [topo.node('n2').peerId, topo.node('n3').peerId].sort())
  t.deepEqual((await topo.client('n2').faults()).blocked, [topo.node('n1').peerId])
  await topo.write('n1', 'v', '/from-n1', 'n1 alone')
  await topo.write('n2', 'v', '/from-n2', 'n2 with n3')
  // Within a group, data flows: n3 gets n2's later write...
  await waitFor(async () => (await paths(topo, 'n3', 'v')).includes('/from-n2') ? true : undefined, 100)
  // ...and across the cut nothing does, nor does any connection come up, for as long as we look.
  for (let i = 0; i < 15; i++) {
    t.false((await paths(topo, 'n2', 'v')).includes('/from-n1'))
    t.false((await paths(topo, 'n3', 'v')).includes('/from-n1'))
    t.deepEqual(await paths(topo, 'n1', 'v'), ['/before', '/from-n1'])
    t.false((await connected(topo, 'n1')).has('n2'))
    t.false((await connected(topo, 'n3')).has('n1'))
    await sleep(100)
  }
  t.true((await connected(topo, 'n2')).has('n3'))

  await topo.heal()
  t.deepEqual(topo.partitions(), [])
  t.deepEqual((await topo.client('n1').faults()).blocked, [])
  const final = await topo.waitForSteady('v')
  t.deepEqual(final.map(f => f.path), ['/before', '/from-n1', '/from-n2'])
  t.is((await topo.read('n3', 'v', '/from-n1')).toString(), 'n1 alone')
  t.is((await topo.read('n1', 'v', '/from-n2')).toString(), 'n2 with n3')
  t.true((await connected(topo, 'n1')).has('n2'))
  await t.throwsAsync(topo.partition(['n1'], ['n1', 'n2']), { code: 'BAD_TOPOLOGY' })
  await t.throwsAsync(topo.client('n1').block(['not-a-peer-id']), { code: 'BAD_REQUEST' })
  await t.throwsAsync(topo.client('n1').block([]), { code: 'BAD_REQUEST' })
})

test.serial('a slow link delays what crosses it by its bandwidth; a lossy one loses replies but the data still arrives; fixLinks restores both', async t => {
  const topo = await topology(t, { nodes: 2, kind: 'in-process' })
  await topo.createVolume('v')
  const [a, b] = [topo.node('n1').peerId, topo.node('n2').peerId]
  // 128 KiB/s each way: 512 KiB of chunks from n1 to n2 cannot take less than 4 s.
  await topo.slowLink('n1', 'n2', { bytesPerSecond: 128 * 1024, delayMs: 20 })
  t.deepEqual((await topo.client('n1').faults()).links, { [b]: { delayMs: 20, bytesPerSecond: 128 * 1024, dropRate: 0 } })
  t.deepEqual(Object.keys((await topo.client('n2').faults()).links), [a])
  const data = randomBytes(512 * 1024)
  const started = Date.now()
  await topo.write('n1', 'v', '/big', data)
  await topo.waitForConvergence('v', { nodes: ['n1', 'n2'] })
  t.true(Date.now() - started >= 3500, `512 KiB crossed a 128 KiB/s link in ${Date.now() - started} ms`)
  t.deepEqual(await topo.read('n2', 'v', '/big'), data)

  // Half the replies lost: pulls fail and retry, and every write still arrives intact.
  await topo.slowLink('n1', 'n2', { dropRate: 0.5 })
  for (let i = 0; i < 5; i++) await topo.write('n1', 'v', `/lossy${i}`, randomBytes(200_000))
  await topo.waitForConvergence('v', { nodes: ['n1', 'n2'], timeoutMs: 120_000 })
  t.is((await paths(topo, 'n2', 'v')).length, 6)

  await topo.fixLinks()
  t.deepEqual((await topo.client('n1').faults()).links, {})
  t.deepEqual((await topo.client('n2').faults()).links, {})
  await t.throwsAsync(topo.client('n1').slowLink([b], { dropRate: 2 }), { code: 'BAD_REQUEST' })
  await t.throwsAsync(topo.client('n1').slowLink([], { delayMs: 5 }), { code: 'BAD_REQUEST' })
})

test.serial('kill -9 right after an acknowledged write: after restart the node still holds it, and it reaches the others once healed', async t => {
  const topo = await topology(t, { nodes: 2 })
  await topo.createVolume('v')
  // Isolated, so the acknowledged write exists on n1 only when it dies.
  await topo.partition(['n1'], ['n2'])
  const bytes = randomBytes(200_000)
  const ack = await topo.write('n1', 'v', '/durable.bin', bytes)
  t.is(ack.size, bytes.byteLength)
  const pid = topo.node('n1').pid!
  const exit = await topo.kill('n1')
  t.is(exit.signal, 'SIGKILL')
  t.false(topo.node('n1').running)
  t.false(alive(pid))
  await t.throwsAsync(topo.write('n1', 'v', '/x', 'x'), { code: 'NODE_DOWN' })

  const before = topo.node('n1').multiaddrs[0]
  await topo.restart('n1')
  t.is(topo.node('n1').multiaddrs[0], before, 'same identity and port')
  t.deepEqual((await topo.client('n1').faults()).blocked, [topo.node('n2').peerId], 'the partition holds across the restart')
  const status = await topo.client('n1').status()
  t.deepEqual(status.uncleanShutdown, ['v'], 'the kill was noticed')
  t.true((await topo.read('n1', 'v', '/durable.bin')).equals(bytes), 'the acknowledged write survived kill -9')
  t.deepEqual(await paths(topo, 'n2', 'v'), [])

  await topo.heal()
  await topo.waitForSteady('v')
  t.true((await topo.read('n2', 'v', '/durable.bin')).equals(bytes))
})

test.serial('stop is clean; a stopped node restarted without --join finds the others by itself and catches up', async t => {
  const topo = await topology(t, { nodes: 2 })
  await topo.createVolume('v')
  const exit = await topo.stop('n2')
  t.deepEqual(exit, { code: 0, signal: null })
  t.false(topo.node('n2').running)
  await topo.write('n1', 'v', '/while-away', 'written while n2 was stopped')
  await topo.restart('n2')
  t.deepEqual((await topo.client('n2').status()).uncleanShutdown, [], 'a clean stop leaves nothing dirty')
  await topo.waitForSteady('v')
  t.is((await topo.read('n2', 'v', '/while-away')).toString(), 'written while n2 was stopped')
  // restart() of a running node is a clean stop and a start.
  const pid = topo.node('n1').pid
  await topo.restart('n1')
  t.not(topo.node('n1').pid, pid)
  t.deepEqual(topo.events.filter(e => e.node === 'n1').map(e => e.kind).slice(-2), ['stop', 'restart'])
  await topo.write('n1', 'v', '/after', 'after')
  await topo.waitForConvergence('v')
  t.is((await topo.read('n2', 'v', '/after')).toString(), 'after')
})

// The swarm's --timeout gave up only between files: a read stalled on a slow holder held the run.
test.serial('read with a signal gives up mid-file when it is aborted, and the node still serves the next read', async t => {
  const topo = await topology(t, { nodes: 2, kind: 'in-process' })
  await topo.createVolume('v', { members: ['n1'] })
  const data = randomBytes(2 * 1024 * 1024)
  await topo.write('n1', 'v', '/big', data)
  // Slowed before n2 is granted, so that its background copy cannot have fetched the file
  // first: each reply from n1 shares 64 KiB/s, so the 2 MiB read would take 30 s or more.
  await topo.slowLink('n1', 'n2', { bytesPerSecond: 64 * 1024 })
  await topo.client('n1').grantReaders('v', [topo.node('n2').peerId])
  await waitFor(async () => (await topo.list('n2', 'v').catch(() => [])).length === 1 ? true : undefined)
  const ac = new AbortController()
  setTimeout(() => { ac.abort(new Error('given up')) }, 500)
  const started = Date.now()
  await t.throwsAsync(topo.read('n2', 'v', '/big', ac.signal), { message: 'given up' })
  t.true(Date.now() - started < 5_000, `gave up after ${Date.now() - started} ms`)
  await t.throwsAsync(topo.read('n2', 'v', '/big', ac.signal), { message: 'given up' }, 'an aborted signal reads nothing')
  await topo.fixLinks()
  // Replies already queued behind the cap still drain at its pace, so the read is retried.
  t.deepEqual(await waitFor(async () => await topo.read('n2', 'v', '/big').catch(() => undefined), 500), data)
})

test('topology configs: the examples validate; errors name the field', async t => {
  const three = await loadTopologyConfig(join(CONFIG, 'three-nodes.json'))
  t.deepEqual(three.nodes.map(n => n.name), ['a', 'b', 'c'])
  const five = await loadTopologyConfig(join(CONFIG, 'five-nodes.json'))
  t.is(five.nodes.length, 5)
  t.deepEqual(five.volumes.map(v => v.writeMode), ['active', 'active', 'all'])
  const schema = JSON.parse(await readFile(join(CONFIG, 'topology.schema.json'), 'utf8'))
  t.deepEqual(schema.properties.volumes.items.properties.writeMode.enum, ['all', 'active'], 'the schema and the validator agree on write modes')

  const err = t.throws(() => parseTopologyConfig({
    nodes: [{ name: 'a' }, { name: 'a' }, { name: 'B' }, { name: 'c', port: 70000, extra: 1 }],
    volumes: [{ name: 'v', members: ['a', 'zz'], writeMode: 'sometimes', chunkSize: 1000 }, { members: [] }],
    colour: 'blue'
  }), { instanceOf: TopologyError })
  t.is(err?.code, 'BAD_TOPOLOGY_CONFIG')
  for (const line of [
    'colour: unknown field',
    "nodes[1].name: 'a' is used twice",
    'nodes[2].name: must match',
    'nodes[3].port: must be an integer from 0 to 65535',
    'nodes[3].extra: unknown field',
    "volumes[0].members[1]: no node named 'zz'",
    'volumes[0].writeMode: must be one of all, active',
    'volumes[0].chunkSize: must be a power of two',
    'volumes[1].name:',
    'volumes[1].members: must be a non-empty list'
  ]) t.true(err.message.includes(line), `reports ${line}\n${err.message}`)
  t.throws(() => parseTopologyConfig({ nodes: [] }), { message: /nodes: must be a non-empty list/ })
  t.throws(() => parseTopologyConfig([]), { message: /must be a JSON object/ })
})

test.serial('CLI: topology up FILE prints how to reach each node, refuses a second up, and topology down stops them all', async t => {
  const dir = await tmpDir(t)
  const up = spawn(process.execPath, [BIN, 'topology', 'up', join(CONFIG, 'three-nodes.json'), '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  up.stdout.setEncoding('utf8').on('data', (s: string) => { out += s })
  up.stderr.setEncoding('utf8').on('data', (s: string) => { err += s })
  const exited = new Promise<number | null>(resolve => up.once('exit', code => resolve(code)))
  let upDone = false
  void exited.then(() => { upDone = true })
  let state: any = undefined // read by the teardown, which may run before it is set
  t.teardown(async () => {
    if (!upDone) { up.kill('SIGKILL'); await exited }
    for (const n of state?.nodes ?? []) if (n.pid !== null && alive(n.pid)) process.kill(n.pid, 'SIGKILL')
  })
  await waitFor(() => {
    if (upDone) throw new Error(`topology up exited early:\n${out}\n${err}`)
    return out.includes('\nstop: ') ? true : undefined
  }, 100)
  state = JSON.parse(await readFile(join(dir, 'topology.json'), 'utf8'))
  t.is(state.pid, up.pid)
  t.deepEqual(state.nodes.map((n: any) => n.name), ['a', 'b', 'c'])
  // One table row per node: name, peer id, API URL, data dir, multiaddr.
  for (const n of state.nodes) {
    const row = out.split('\n').find(l => l.startsWith(`${n.name} `))
    t.truthy(row, `a row for ${n.name} in:\n${out}`)
    const cols = row!.trim().split(/\s+/)
    t.deepEqual([cols[1], cols[2], cols[4]], [n.peerId, n.apiUrl, n.multiaddrs[0]])
    t.true(n.dataDir.endsWith(cols[3]))
    t.true(alive(n.pid))
    t.is((await new ReplicantClient(n.apiUrl, { token: await readApiToken(n.dataDir) }).status()).peerId, n.peerId)
  }
  t.regex(out, /volume docs \(active\): a, b, c/)
  t.regex(out, /volume media \(active\): a, b/)
  // The volumes of the file exist on their members and replicate.
  const c = new ReplicantClient(state.nodes[2].apiUrl, { token: await readApiToken(state.nodes[2].dataDir) })
  t.deepEqual((await c.listVolumes()).volumes.map((v: any) => v.name), ['docs'])
  // --api-url takes its token from REPLICANT_TOKEN (or --token), never from --data.
  const put = await runCli(['--api-url', state.nodes[0].apiUrl, 'put', 'docs', '-', '/hello.txt'], { dataDir: dir, input: 'hello from a', env: { REPLICANT_TOKEN: await readApiToken(state.nodes[0].dataDir) } })
  t.is(put.code, 0, put.stderr)
  await waitFor(async () => (await c.list('docs')).files.length === 1 ? true : undefined, 100)
  const got = await runCli(['--api-url', state.nodes[2].apiUrl, '--token', await readApiToken(state.nodes[2].dataDir), 'get', 'docs', '/hello.txt'], { dataDir: dir })
  t.is(got.stdout, 'hello from a')

  const second = await runCli(['topology', 'up', join(CONFIG, 'three-nodes.json'), '--dir', dir], { dataDir: dir })
  t.is(second.code, 1)
  t.regex(second.stderr, /TOPOLOGY_RUNNING/)

  const down = await runCli(['topology', 'down', '--dir', dir], { dataDir: dir })
  t.is(down.code, 0, down.stderr)
  t.regex(down.stdout, /topology three-nodes down/)
  t.is(await exited, 0, `up exits 0 after stopping every node cleanly:\n${out}`)
  t.regex(out, /SIGTERM: stopping 3 nodes/)
  for (const n of state.nodes) t.false(alive(n.pid), `${n.name} stopped`)
  t.false(await exists(join(dir, 'topology.json')), 'the state file is removed')
  const again = await runCli(['topology', 'down', '--dir', dir], { dataDir: dir })
  t.is(again.code, 1)
  t.regex(again.stderr, /NO_TOPOLOGY/)
})

test.serial('CLI: topology up rejects an invalid file naming the field; down stops the nodes of an up that was killed', async t => {
  const dir = await tmpDir(t)
  const bad = join(dir, 'bad.json')
  await writeFile(bad, JSON.stringify({ nodes: [{ name: 'a' }], volumes: [{ name: 'v', members: ['a', 'zz'] }] }))
  const r = await runCli(['topology', 'up', bad, '--dir', join(dir, 'state')], { dataDir: dir })
  t.is(r.code, 1)
  t.regex(r.stderr, /volumes\[0\]\.members\[1\]: no node named 'zz'/)
  t.regex(r.stderr, /BAD_TOPOLOGY_CONFIG/)

  const one = join(dir, 'one.json')
  await writeFile(one, JSON.stringify({ name: 'one', nodes: [{ name: 'solo' }], volumes: [{ name: 'v', members: ['solo'] }] }))
  const stateDir = join(dir, 'state')
  const up = spawn(process.execPath, [BIN, 'topology', 'up', one, '--dir', stateDir, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  up.stdout.setEncoding('utf8').on('data', (s: string) => { out += s })
  const exited = new Promise<void>(resolve => up.once('exit', () => resolve()))
  let nodePid: number | undefined = undefined // read by the teardown, which may run before it is set
  t.teardown(async () => {
    up.kill('SIGKILL')
    await exited
    if (nodePid !== undefined && alive(nodePid)) process.kill(nodePid, 'SIGKILL')
  })
  const state = await waitFor(() => out.includes('\n') ? JSON.parse(out.split('\n')[0]) : undefined, 100)
  nodePid = state.nodes[0].pid
  t.true(alive(nodePid!))
  up.kill('SIGKILL')
  await exited
  t.true(alive(nodePid!), 'the node outlives its killed `up`')
  const down = await runCli(['topology', 'down', '--dir', stateDir], { dataDir: dir })
  t.is(down.code, 0, down.stderr)
  t.regex(down.stdout, /stopped 1 orphaned nodes/)
  await waitFor(() => alive(nodePid!) ? undefined : true, 100)
  t.pass()
})
