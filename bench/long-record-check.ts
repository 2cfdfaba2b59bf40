#!/usr/bin/env node
/**
 * A check too big for the test suite: a file whose chunk list is over one 5 MiB frame
 * (default 700 MiB at 4 KiB chunks: 179,200 chunks, a 5.5 MiB list) replicates to a steady
 * member and to a wannabe added later, byte-identical. Run: `npm run build && node
 * dist/bench/long-record-check.js [MiB] [--all]` (--all: in all mode, so the prepare carries
 * the list). Prints the times; exits 1 on a mismatch or timeout.
 */
import '../core/polyfill.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash, randomBytes } from 'node:crypto'
import { ReplicantNode } from '../node/replicant-node.js'
import { asyncSource } from './lib.js'

const MiB = 1024 * 1024
const LOOPBACK = '/ip4/127.0.0.1/tcp/0'

async function digest (node: ReplicantNode, path: string): Promise<string> {
  const h = createHash('sha256')
  for await (const p of node.volumes.readFile('big', await node.volumes.stat('big', path))) h.update(p)
  return h.digest('hex')
}

async function until (what: string, fn: () => Promise<boolean>, timeoutMs = 600_000): Promise<number> {
  const t0 = Date.now()
  while (!(await fn())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 500))
  }
  return Date.now() - t0
}

const size = Number(process.argv.slice(2).find(a => !a.startsWith('--')) ?? 700) * MiB
/** --all: the volume is in all mode, so the write's prepare carries the long list (split). */
const allMode = process.argv.includes('--all')
const dirs: string[] = []
const nodes: ReplicantNode[] = []
const start = async (join_?: string): Promise<ReplicantNode> => {
  const dir = await mkdtemp(join(tmpdir(), 'replicant-long-'))
  dirs.push(dir)
  // All mode: members fetch the whole file while preparing, longer than the default 30 s.
  const n = await ReplicantNode.start({ dataDir: dir, listen: [LOOPBACK], api: false, testing: true, ...(join_ !== undefined ? { join: [join_] } : {}), ...(allMode ? { prepareTimeoutMs: 600_000 } : {}) })
  nodes.push(n)
  return n
}
let failed: boolean
try {
  const a = await start()
  const b = await start(a.multiaddrs()[0])
  await a.createVolume({ name: 'big', chunkSize: 4096, replicas: [b.peerId], ...(allMode ? { writeMode: 'all' as const } : {}) })
  const h = createHash('sha256')
  function * source (): Generator<Uint8Array> {
    for (let n = 0; n < size; n += MiB) { const p = randomBytes(Math.min(MiB, size - n)); h.update(p); yield p }
  }
  let t0 = Date.now()
  const rec = await a.volumes.putFile('big', '/disk.img', asyncSource(source()))
  console.log(`written: ${size / MiB} MiB, ${rec.chunks.byteLength / 32} chunks, a ${(rec.chunks.byteLength / MiB).toFixed(2)} MiB list, in ${Date.now() - t0} ms`)
  const want = h.digest('hex')
  await a.volumes.putFile('big', '/after', asyncSource([Buffer.from('after')]))
  const ms = await until('the steady member', async () => (await b.store.getFile('big', '/after')) !== undefined && (await b.store.getFile('big', '/disk.img')) !== undefined)
  const okB = await digest(b, '/disk.img') === want
  console.log(`steady member: both files after ${ms} ms; identical: ${okB}`)
  const c = await start(a.multiaddrs()[0])
  t0 = Date.now()
  await a.addReplica('big', c.peerId)
  const msC = await until('the wannabe', async () => (await c.store.getVolume('big'))?.state === 'steady')
  const okC = await digest(c, '/disk.img') === want
  console.log(`wannabe: steady after ${msC} ms; identical: ${okC}`)
  failed = !okB || !okC
} catch (err) {
  console.error((err as Error).message)
  failed = true
} finally {
  for (const n of nodes.reverse()) await n.stop().catch(() => {})
  for (const d of dirs) await rm(d, { recursive: true, force: true })
}
process.exit(failed ? 1 : 0)
