import '../core/polyfill.js'
import test from 'ava'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { startNode, waitFor, httpRequest, clientOf } from './helpers.js'
import { bytes, converged, read } from './replication-helpers.js'
import type { ReplicantNode } from '../node/replicant-node.js'
import { Readable } from 'node:stream'

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
  t.is(sample(a1, 'replicant_sent_bytes_total', { volume: 'mv' }), data.byteLength, 'a sent them')
  t.is(sample(b1, 'replicant_sent_bytes_total', { volume: 'mv' }), 0, 'b\'s registry is its own: it sent nothing')
  t.is(sample(a1, 'replicant_peers_connected'), 1)
  t.true(sample(a1, 'replicant_store_pack_bytes') >= data.byteLength)
  t.true(sample(a1, 'libp2p_data_transfer_bytes_total', { protocol: '/replicant/chunk/1.1.0 sent' }) >= data.byteLength, 'libp2p counted the chunk protocol\'s bytes')
  t.is((await promtool(b1)).code, 0)

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
  t.is((await promtool(c1)).code, 0)
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
  t.is((await promtool(a2)).code, 0)
  t.is((await promtool(b2)).code, 0)

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
