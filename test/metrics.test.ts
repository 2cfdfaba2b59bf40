import '../core/polyfill.js'
import test from 'ava'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { startNode, waitFor, httpRequest, clientOf, DIST } from './helpers.js'
import { bytes, converged, read } from './replication-helpers.js'
import type { ReplicantNode } from '../node/replicant-node.js'
import { Readable } from 'node:stream'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'

const PROMTOOL = '/usr/bin/promtool'

/** promtool's verdict on a metrics text: exit code and what it printed. */
async function promtool (text: string): Promise<{ code: number | null, out: string }> {
  return await new Promise((resolve, reject) => {
    const p = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (b: Buffer) => { out += b.toString() })
    p.stderr.on('data', (b: Buffer) => { out += b.toString() })
    p.once('error', reject)
    p.once('close', code => { resolve({ code, out }) })
    p.stdin.end(text)
  })
}

async function scrape (node: ReplicantNode): Promise<string> {
  const r = await httpRequest(node.apiUrl!, { path: '/metrics' })
  if (r.status !== 200) throw new Error(`GET /metrics: ${r.status} ${r.body.toString()}`)
  return r.body.toString('utf8')
}

/** The value of one sample, `name{labels}` with labels in any order; 0 when absent. */
function sample (text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line)
    if (m === null || m[1] !== name) continue
    const got = Object.fromEntries([...(m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map(x => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4])
  }
  return 0
}

async function blockBoth (x: ReplicantNode, y: ReplicantNode): Promise<void> {
  await x.peers.block([y.peerId])
  await y.peers.block([x.peerId])
}

test('GET /metrics passes promtool, and its counters move after a write, a sync, an on-demand read and a conflict', async t => {
  t.timeout(180_000)
  const a = await startNode(t)
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'mv', replicas: [b.peerId] })
  await waitFor(async () => (await b.store.getVolume('mv')) !== undefined ? true : undefined)

  const a0 = await scrape(a)
  const lint = await promtool(a0)
  t.is(lint.code, 0, `promtool check metrics: ${lint.out}`)
  t.is(lint.out.trim(), '', 'no lint finding')
  t.true(a0.includes('# TYPE libp2p_data_transfer_bytes_total counter'), 'libp2p\'s metrics are on the node\'s registry')
  t.is(sample(a0, 'replicant_member_state', { volume: 'mv', member: a.peerId, state: 'steady' }), 1)
  t.is(sample(a0, 'replicant_volume_generation', { volume: 'mv' }), 1)

  // A write through the HTTP API, and its sync to b.
  const data = randomBytes(300_000)
  await clientOf(a).put('mv', '/one.bin', Readable.from([data]), { size: data.byteLength })
  await converged([a, b], 'mv', tr => tr.length === 1)
  const a1 = await scrape(a)
  const b1 = await scrape(b)
  t.is(sample(a1, 'replicant_local_changes_total', { volume: 'mv', cause: 'write' }), 1, 'the write counted on a')
  t.is(sample(a1, 'replicant_http_requests_total', { route: '/v1/volumes/:param/files/*', method: 'PUT', status: '201' }), 1, 'the PUT counted by route and status')
  t.true(sample(a1, 'replicant_http_request_duration_seconds_count', { route: '/v1/volumes/:param/files/*', method: 'PUT' }) >= 1)
  t.is(sample(b1, 'replicant_local_changes_total', { volume: 'mv', cause: 'remoteApply' }), 1, 'the sync applied on b')
  t.is(sample(b1, 'replicant_received_bytes_total', { volume: 'mv', source: 'pull' }), data.byteLength, 'b received the file\'s bytes by pull')
  t.is(sample(b1, 'replicant_received_chunks_total', { volume: 'mv', source: 'pull' }), 5)
  t.is(sample(a1, 'replicant_sent_bytes_total', { volume: 'mv', source: 'bulk' }), data.byteLength, 'a sent them, for a pull (bulk)')
  t.is(sample(a1, 'replicant_sent_chunks_total', { volume: 'mv', source: 'bulk' }), 5)
  t.is(sample(a1, 'replicant_sent_bytes_total', { volume: 'mv', source: 'on-demand' }), 0, 'nothing yet for a reader')
  t.is(sample(b1, 'replicant_sent_bytes_total', { volume: 'mv' }), 0, 'b\'s registry is its own: it sent nothing')
  t.is(sample(a1, 'replicant_peers_connected'), 1)
  t.true(sample(a1, 'replicant_store_pack_bytes') >= data.byteLength)
  t.true(sample(a1, 'libp2p_data_transfer_bytes_total', { protocol: '/replicant/chunk/1.1.0 sent' }) >= data.byteLength, 'libp2p counted the chunk protocol\'s bytes')
  { const l = await promtool(b1); t.is(l.code, 0, l.out) }

  // An on-demand read: a new member that does no background copy reads the file.
  const c = await startNode(t, { join: [a.multiaddrs()[0]], copyConcurrency: 0 })
  await a.addReplica('mv', c.peerId)
  await waitFor(async () => (await c.store.getFile('mv', '/one.bin')) !== undefined ? true : undefined)
  t.deepEqual(await read(c, 'mv', '/one.bin'), data)
  const c1 = await scrape(c)
  t.is(sample(c1, 'replicant_received_bytes_total', { volume: 'mv', source: 'on-demand' }), data.byteLength, 'the read fetched every chunk on demand')
  t.is(sample(c1, 'replicant_on_demand_read_duration_seconds_count', { volume: 'mv' }), 5, 'five chunk fetches timed')
  t.true(sample(c1, 'replicant_on_demand_read_duration_seconds_bucket', { volume: 'mv', le: '+Inf' }) === 5)
  t.is(sample(c1, 'replicant_member_state', { volume: 'mv', member: c.peerId, state: 'copy' }), 1, 'c is a wannabe')
  // The holders served them as a reader's (want-lists flagged p: 1), a or b as holder choice went.
  const [aRead, bRead] = [await scrape(a), await scrape(b)]
  t.true(sample(aRead, 'replicant_sent_bytes_total', { volume: 'mv', source: 'on-demand' }) + sample(bRead, 'replicant_sent_bytes_total', { volume: 'mv', source: 'on-demand' }) >= data.byteLength, 'served on demand, counted so by the holders')
  t.is(sample(aRead, 'replicant_sent_bytes_total', { volume: 'mv', source: 'bulk' }), data.byteLength, 'the bulk count did not move')
  { const l = await promtool(c1); t.is(l.code, 0, l.out) }
  await a.removeReplica('mv', c.peerId)

  // A conflict: a and b write the same path apart, then meet.
  await blockBoth(a, b)
  await a.volumes.putFile('mv', '/c.txt', bytes(Buffer.from('from a')), { mtime: 1_000 })
  await b.volumes.putFile('mv', '/c.txt', bytes(Buffer.from('from b, longer')), { mtime: 2_000 })
  a.peers.unblock()
  b.peers.unblock()
  await converged([a, b], 'mv', tr => tr.some(l => l.includes('.conflict-')))
  const [a2, b2] = [await scrape(a), await scrape(b)]
  t.is(sample(a2, 'replicant_conflicts_total', { volume: 'mv' }) + sample(b2, 'replicant_conflicts_total', { volume: 'mv' }) >= 1, true, 'the conflict copy counted')
  { const l = await promtool(a2); t.is(l.code, 0, l.out) }
  { const l = await promtool(b2); t.is(l.code, 0, l.out) }

  // GC: a run is counted.
  await a.collectGarbage({ youngSeconds: 0 })
  t.is(sample(await scrape(a), 'replicant_gc_runs_total'), 1)
})

test('GET /metrics needs the token unless the node runs with metricsPublic; no other route opens', async t => {
  const closed = await startNode(t)
  t.is((await httpRequest(closed.apiUrl!, { path: '/metrics', token: null })).status, 401)
  t.is((await httpRequest(closed.apiUrl!, { path: '/metrics' })).status, 200)
  const open = await startNode(t, { metricsPublic: true })
  const r = await httpRequest(open.apiUrl!, { path: '/metrics', token: null })
  t.is(r.status, 200)
  t.regex(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  t.is((await httpRequest(open.apiUrl!, { path: '/v1/status', token: null })).status, 401, 'the rest still needs the token')
  t.is((await httpRequest(open.apiUrl!, { path: '/metrics', token: null, headers: { host: 'evil.example:80' } })).status, 403, 'the Host check still applies')
})

test('all-mode writes counted by outcome; a copy\'s progress while it runs; every replicant_ metric is listed in docs/METRICS.md', async t => {
  t.timeout(180_000)
  const a = await startNode(t)
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'am', replicas: [b.peerId], writeMode: 'all' })
  await waitFor(async () => (await b.store.getVolume('am')) !== undefined ? true : undefined)
  await a.volumes.putFile('am', '/ok.txt', bytes(Buffer.from('on both')))
  t.is(sample(await scrape(a), 'replicant_all_mode_writes_total', { volume: 'am', outcome: 'committed' }), 1)
  await blockBoth(a, b)
  const err = await t.throwsAsync(a.volumes.putFile('am', '/no.txt', bytes(Buffer.from('b cannot take it'))))
  t.is((err as { code?: string }).code, 'WRITE_NOT_ACKNOWLEDGED')
  const am = await scrape(a)
  t.is(sample(am, 'replicant_all_mode_writes_total', { volume: 'am', outcome: 'aborted' }), 1)
  t.is(sample(am, 'replicant_all_mode_writes_total', { volume: 'am', outcome: 'committed' }), 1)
  t.true(am.includes('replicant_all_mode_in_doubt{volume="am"} 0'), 'the in-doubt gauge is there')
  a.peers.unblock()
  b.peers.unblock()

  // A copy onto a new member over a link capped at 1 MiB/s: its progress gauges while it runs.
  await a.createVolume({ name: 'cp', chunkSize: 4096 })
  await a.volumes.putFile('cp', '/big.bin', bytes(randomBytes(4 * 1024 * 1024)))
  const c = await startNode(t, { join: [a.multiaddrs()[0]] })
  a.links.set([c.peerId], { bytesPerSecond: 1024 * 1024 })
  await a.addReplica('cp', c.peerId)
  const during = await waitFor(async () => {
    const text = await scrape(c)
    return sample(text, 'replicant_copy_done_bytes', { volume: 'cp' }) > 0 ? text : undefined
  }, 100)
  t.is(sample(during, 'replicant_copy_size_bytes', { volume: 'cp' }), 4 * 1024 * 1024)
  t.true(sample(during, 'replicant_copy_done_bytes', { volume: 'cp' }) < 4 * 1024 * 1024, 'seen before its end')
  t.is(sample(during, 'replicant_copy_size_files', { volume: 'cp' }), 1)
  t.true(sample(during, 'replicant_received_bytes_total', { volume: 'cp', source: 'copy' }) > 0, 'received for the copy')
  { const l = await promtool(during); t.is(l.code, 0, l.out) }
  a.links.clear()
  await waitFor(async () => (await c.volumeInfo('cp') as { state: string }).state === 'steady' ? true : undefined)
  const after = await scrape(c)
  t.false(after.includes('replicant_copy_done_bytes{volume="cp"}'), 'no progress series once the copy ended')
  t.is(sample(after, 'replicant_received_bytes_total', { volume: 'cp', source: 'copy' }), 4 * 1024 * 1024)

  // Every replicant_ metric a live node shows is in the docs' tables.
  const docs = await readFile(join(DIST, '..', 'docs', 'METRICS.md'), 'utf8')
  const names = new Set([...(await scrape(a)).matchAll(/^# TYPE (replicant_\w+) /gm)].map(m => m[1]))
  t.true(names.size > 30, `${names.size} replicant_ metrics`)
  t.deepEqual([...names].filter(n => !docs.includes(`\`${n}\``)), [], 'listed in docs/METRICS.md')
})

test('libp2p\'s ping times, in milliseconds, are given in seconds: promtool passes once a connection was pinged', async t => {
  t.timeout(120_000)
  const a = await startNode(t)
  await startNode(t, { join: [a.multiaddrs()[0]] })
  // libp2p's connection monitor pings every 10 s; its gauge has samples from the first ping on.
  const deadline = Date.now() + 60_000
  const raw = await waitFor(async () => {
    if (Date.now() > deadline) throw new Error('no ping within 60 s')
    const text = await a.ops.registry.registry.getSingleMetricAsString('libp2p_connection_monitor_ping_time_milliseconds')
    return /^libp2p_connection_monitor_ping_time_milliseconds\{libp2p_connection_monitor_ping_time_milliseconds="success"\} \d/m.test(text) ? text : undefined
  }, 250)
  const ms = Number(/^libp2p_connection_monitor_ping_time_milliseconds\{libp2p_connection_monitor_ping_time_milliseconds="success"\} (\S+)$/m.exec(raw)![1])
  const text = await scrape(a)
  const lint = await promtool(text)
  t.is(lint.code, 0, `promtool check metrics: ${lint.out}`)
  t.false(text.includes('_milliseconds'), 'no metric in milliseconds')
  t.true(text.includes('# TYPE libp2p_connection_monitor_ping_time_seconds gauge'))
  const s = sample(text, 'libp2p_connection_monitor_ping_time_seconds', { libp2p_connection_monitor_ping_time_seconds: 'success' })
  t.true(s >= 0 && s <= ms / 1000 + 1, `a ping time in seconds: ${s} (${ms} ms before)`)
  t.true(/libp2p_connection_monitor_ping_time_seconds="successVariance"\} /.test(text), 'the variance too (in s²)')
})

test('replicant_member_sequence_lag: a member behind a slow link shows the changes it has not applied yet, and 0 once it has', async t => {
  t.timeout(120_000)
  const a = await startNode(t)
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'lag', replicas: [b.peerId], chunkSize: 4096 })
  await waitFor(async () => (await b.store.getVolume('lag')) !== undefined ? true : undefined)
  await a.volumes.putFile('lag', '/first.bin', bytes(randomBytes(1000)))
  await waitFor(async () => (await b.volumeInfo('lag')).files === 1 ? true : undefined)
  t.is(sample(await scrape(b), 'replicant_member_sequence_lag', { volume: 'lag', member: a.peerId }), 0, 'caught up: no lag')
  // 12 writes of 64 KiB to a behind a 64 KiB/s link: b hears of a's head long before it has pulled them.
  a.links.set([b.peerId], { bytesPerSecond: 64 * 1024 })
  for (let i = 0; i < 12; i++) await a.volumes.putFile('lag', `/w${i}.bin`, bytes(randomBytes(64 * 1024)))
  const behind = await waitFor(async () => {
    const n = sample(await scrape(b), 'replicant_member_sequence_lag', { volume: 'lag', member: a.peerId })
    return n > 0 ? n : undefined
  }, 50)
  t.true(behind > 0 && behind <= 12, `lag while behind: ${behind}`)
  a.links.clear()
  await waitFor(async () => (await b.volumeInfo('lag')).files === 13 ? true : undefined, 100)
  await waitFor(async () => sample(await scrape(b), 'replicant_member_sequence_lag', { volume: 'lag', member: a.peerId }) === 0 ? true : undefined, 100)
  const text = await scrape(b)
  t.true(text.includes(`replicant_member_sequence_lag{volume="lag",member="${a.peerId}"} 0`) || text.includes(`replicant_member_sequence_lag{member="${a.peerId}",volume="lag"} 0`), 'the series is there, at 0')
  t.false(text.includes(`replicant_member_sequence_lag{volume="lag",member="${b.peerId}"}`), 'no lag series for the node itself')
})
