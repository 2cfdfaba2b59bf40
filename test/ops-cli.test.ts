import '../core/polyfill.js'
import test from 'ava'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { BIN, LOOPBACK, startNode, tmpDir, waitFor } from './helpers.js'
import { bytes } from './replication-helpers.js'
import { jsonLogLine } from '../core/log.js'
import type { StatusResponse } from '../api/types.js'

function run (args: string[], env: NodeJS.ProcessEnv = {}): { out: () => string, err: () => string, stop: (s?: NodeJS.Signals) => Promise<number | null>, exited: Promise<number | null> } {
  const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBUG: '', ...env } })
  let out = ''
  let err = ''
  p.stdout.setEncoding('utf8').on('data', (s: string) => { out += s })
  p.stderr.setEncoding('utf8').on('data', (s: string) => { err += s })
  const exited = new Promise<number | null>(resolve => { p.once('close', code => { resolve(code) }) })
  return { out: () => out, err: () => err, exited, stop: async (s = 'SIGTERM') => { p.kill(s); return await exited } }
}

test('start --log-format json: every stdout and debug line is one JSON object with level, time, component (and volume, peer when named)', async t => {
  t.timeout(60_000)
  const dataDir = join(await tmpDir(t), 'n')
  const node = run(['--data', dataDir, 'start', '--listen', LOOPBACK, '--api', '127.0.0.1:0', '--log-format', 'json'], { DEBUG: 'replicant:*' })
  t.teardown(async () => { await node.stop('SIGKILL') })
  await waitFor(() => node.out().includes('"message":"status page: ') ? true : undefined)
  t.is(await node.stop(), 0)
  const outLines = node.out().trim().split('\n')
  const errLines = node.err().trim().split('\n').filter(l => l !== '')
  t.true(errLines.length > 0, 'DEBUG lines were written')
  for (const line of [...outLines, ...errLines]) {
    const o = JSON.parse(line) as Record<string, unknown>
    t.true(typeof o.level === 'string' && typeof o.time === 'string' && typeof o.component === 'string' && typeof o.message === 'string', line)
    t.false(Number.isNaN(Date.parse(o.time as string)), `time: ${line}`)
  }
  const started = outLines.map(l => JSON.parse(l) as { message: string, peer?: string }).find(o => o.message.startsWith('peer id: '))
  t.truthy(started?.peer, 'the peer named in a line is a field')
  t.true(errLines.some(l => (JSON.parse(l) as { namespace: string }).namespace.startsWith('replicant:')), 'the namespaces stay')
  t.deepEqual(JSON.parse(jsonLogLine('replicant:sync:error', ['%s: pull from %s failed', 'photos', '12D3KooWHRzjSgUEm4xyAo6oyYaycNKhPGiLKMGghGpBU9FmKgQY'], new Date(0))),
    { level: 'error', time: '1970-01-01T00:00:00.000Z', component: 'sync', volume: 'photos', peer: '12D3KooWHRzjSgUEm4xyAo6oyYaycNKhPGiLKMGghGpBU9FmKgQY', message: 'photos: pull from 12D3KooWHRzjSgUEm4xyAo6oyYaycNKhPGiLKMGghGpBU9FmKgQY failed', namespace: 'replicant:sync:error' })
})

test('status --watch --json redraws from the event stream: a write shows without polling; Ctrl-C ends it', async t => {
  t.timeout(60_000)
  const a = await startNode(t)
  await a.createVolume({ name: 'wv' })
  const watch = run(['--data', a.dataDir, 'status', '--watch', '--json'])
  t.teardown(async () => { await watch.stop('SIGKILL') })
  const statuses = (): StatusResponse[] => watch.out().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as StatusResponse)
  await waitFor(() => statuses().length > 0 ? true : undefined)
  t.is(statuses()[0].volumes[0].files, 0)
  await a.volumes.putFile('wv', '/seen.txt', bytes(Buffer.from('x')))
  const at = Date.now()
  await waitFor(() => statuses().some(s => s.volumes[0]?.files === 1) ? true : undefined)
  t.true(Date.now() - at < 5_000, `redrawn after ${Date.now() - at} ms`)
  t.is(await watch.stop('SIGINT'), 0, watch.err())
})
