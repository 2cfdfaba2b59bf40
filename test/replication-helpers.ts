import '../core/polyfill.js'
import type { ExecutionContext } from 'ava'
import { toKey } from '../core/version-vector.js'
import { hashHex } from '../store/chunk-store.js'
import { startNode, waitFor, asyncSource } from './helpers.js'
import type { ReplicantNode } from '../node/replicant-node.js'

type T = ExecutionContext<unknown>

/** A node's live tree of a volume as comparable text: path, size, chunk list and version. */
export async function tree (node: ReplicantNode, volume: string): Promise<string[]> {
  const out: string[] = []
  for await (const f of node.volumes.listFiles(volume)) {
    out.push(`${f.path} ${f.size} ${hashHex(f.chunks).slice(0, 16)}:${f.chunks.byteLength} ${toKey(f.vv)}`)
  }
  return out
}

export async function paths (node: ReplicantNode, volume: string): Promise<string[]> {
  const out: string[] = []
  for await (const f of node.volumes.listFiles(volume)) out.push(f.path)
  return out
}

/** Waits until every node holds the same tree of `volume` and `accept(tree)` holds; returns it. */
export async function converged (nodes: ReplicantNode[], volume: string, accept: (tree: string[]) => boolean = () => true): Promise<string[]> {
  return await waitFor(async () => {
    const trees = await Promise.all(nodes.map(async n => await tree(n, volume).catch(() => undefined)))
    const first = trees[0]
    if (first === undefined) return undefined
    const same = trees.every(tr => tr !== undefined && tr.join('\n') === first.join('\n'))
    return same && accept(first) ? first : undefined
  }, 100)
}

/** Starts `n` nodes where every node after the first joins the first. */
export async function cluster (t: T, n: number): Promise<ReplicantNode[]> {
  const first = await startNode(t, { api: false })
  const rest = await Promise.all(Array.from({ length: n - 1 }, async () => await startNode(t, { api: false, join: [first.multiaddrs()[0]] })))
  return [first, ...rest]
}

/** Bytes as a one-piece async source. */
export function bytes (b: Uint8Array): AsyncGenerator<Uint8Array> { return asyncSource([b]) }

/** Reads a whole (small) file of a node. */
export async function read (node: ReplicantNode, volume: string, path: string): Promise<Buffer> {
  const rec = await node.volumes.stat(volume, path)
  const parts: Uint8Array[] = []
  for await (const p of node.volumes.readFile(volume, rec)) parts.push(p)
  return Buffer.concat(parts)
}

/**
 * If the test is still running after `afterMs`, logs what the nodes hold and how each sees the
 * volume (states, copy progress, pulls), so a test that times out on a busy CI machine says
 * where it stood instead of only "timeout exceeded". ava prints t.log lines of failed tests.
 */
export function watchdog (t: T, afterMs: number, nodes: ReplicantNode[], volume: string): void {
  const timer = setTimeout(() => {
    void Promise.all(nodes.map(async (n, i) => {
      const info = await n.volumeInfo(volume).catch((e: Error) => e.message)
      const files = await tree(n, volume).catch((e: Error) => [e.message])
      return `node ${i} (${n.peerId}): ${JSON.stringify(info)}\n  files: ${files.join(' | ')}`
    })).then(lines => { for (const l of lines) t.log(`watchdog after ${afterMs} ms: ${l}`) })
  }, afterMs)
  timer.unref()
  t.teardown(() => { clearTimeout(timer) })
}
