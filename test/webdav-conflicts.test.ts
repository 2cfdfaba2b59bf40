/**
 * Conflicts over WebDAV (issue 18: "conflicts appear as their conflict copies"): two members
 * write the same paths apart, through /dav/, and after they meet both list the winner at the
 * path and the loser as its conflict copy, a file of its own that reads back; a folder made
 * with MKCOL on one side and a file PUT at the same path on the other keep both too.
 */
import '../core/polyfill.js'
import test from 'ava'
import { startNode, httpRequest, type HttpResult } from './helpers.js'
import { converged } from './replication-helpers.js'
import type { ReplicantNode } from '../node/replicant-node.js'

async function dav (node: ReplicantNode, method: string, path: string, headers: Record<string, string | number> = {}, body?: string): Promise<HttpResult> {
  return await httpRequest(node.apiUrl!, { method, path, headers, body })
}

async function isolate (a: ReplicantNode, b: ReplicantNode): Promise<void> {
  await a.peers.block([b.peerId])
  await b.peers.block([a.peerId])
}

function hrefs (r: HttpResult): string[] {
  return [...r.body.toString('utf8').matchAll(/<D:href>([^<]*)<\/D:href>/g)].map(m => m[1])
}

test('writes made apart on two members show over WebDAV as the winner and its conflict copy, on both', async t => {
  t.timeout(180_000)
  const a = await startNode(t)
  const b = await startNode(t, { join: [a.multiaddrs()[0]] })
  await a.createVolume({ name: 'cf', replicas: [b.peerId] })
  t.is((await dav(a, 'PUT', '/dav/cf/doc.txt', { 'x-oc-mtime': 1 }, 'base')).status, 201)
  await converged([a, b], 'cf', tr => tr.length === 1)

  await isolate(a, b)
  // The later mtime wins (replication/reconcile.ts rank): a's doc.txt, and a's folder x over b's file x.
  t.is((await dav(a, 'PUT', '/dav/cf/doc.txt', { 'x-oc-mtime': 3000 }, 'a: the later version')).status, 204)
  t.is((await dav(b, 'PUT', '/dav/cf/doc.txt', { 'x-oc-mtime': 2000 }, 'b: earlier')).status, 204)
  t.is((await dav(b, 'PUT', '/dav/cf/x', { 'x-oc-mtime': 1000 }, 'b made a file x')).status, 201)
  t.is((await dav(a, 'MKCOL', '/dav/cf/x')).status, 201)
  a.peers.unblock()
  b.peers.unblock()
  await converged([a, b], 'cf', tr => tr.length === 4)

  for (const n of [a, b]) {
    const listing = await dav(n, 'PROPFIND', '/dav/cf/', { depth: 1 })
    t.is(listing.status, 207)
    const names = hrefs(listing)
    const docCopy = names.find(h => /^\/dav\/cf\/doc\.conflict-[0-9a-f]{8}\.txt$/.test(h))
    const xCopy = names.find(h => /^\/dav\/cf\/x\.conflict-[0-9a-f]{8}$/.test(h))
    t.truthy(docCopy, names.join(' '))
    t.truthy(xCopy, names.join(' '))
    t.deepEqual(names, ['/dav/cf/', docCopy, '/dav/cf/doc.txt', '/dav/cf/x/', xCopy])
    t.is((await dav(n, 'GET', '/dav/cf/doc.txt')).body.toString(), 'a: the later version')
    t.is((await dav(n, 'GET', docCopy!)).body.toString(), 'b: earlier')
    t.is((await dav(n, 'GET', xCopy!)).body.toString(), 'b made a file x')
    // The folder is a folder (its marker won), and still takes files.
    t.regex((await dav(n, 'PROPFIND', '/dav/cf/x', { depth: 0 })).body.toString(), /<D:collection\/>/)
  }
  t.is((await dav(b, 'PUT', '/dav/cf/x/inside.txt', {}, 'in')).status, 201)
  // A client that settles the conflict deletes the copy, like any file.
  const copy = hrefs(await dav(b, 'PROPFIND', '/dav/cf/', { depth: 1 })).find(h => h.includes('doc.conflict-'))!
  t.is((await dav(b, 'DELETE', copy)).status, 204)
  await converged([a, b], 'cf', tr => tr.length === 4 && !tr.some(l => l.includes('doc.conflict-')))
})
