/**
 * PROPFIND Depth 1 lists a folder's direct members without reading the records below its
 * child folders (api/dav/dav-tree.ts children()): the listing seeks past each subtree.
 */
import '../core/polyfill.js'
import test from 'ava'
import { Readable } from 'node:stream'
import { startNode, httpRequest, clientOf } from './helpers.js'
import { DavTree, type DavVolumes } from '../api/dav/dav-tree.js'
import type { FileRecord } from '../core/records.js'
import type { ReplicantNode } from '../node/replicant-node.js'

const BELOW = 1_500

async function dav (node: ReplicantNode, method: string, path: string, headers: Record<string, string | number> = {}, body?: string): Promise<{ status: number, text: string }> {
  const r = await httpRequest(node.apiUrl!, { method, path, headers, body })
  return { status: r.status, text: r.body.toString('utf8') }
}

test('PROPFIND Depth 1 lists the direct members of a folder and reads none of the records below its subfolders', async t => {
  t.timeout(120_000)
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'l' })
  // /f holds two files, an empty folder (a marker), `sub` with BELOW records under it (as
  // markers, which are records like any file), `sub.txt` (sorts between `sub` and `sub/`),
  // `sub2` implicit (no marker, one file below), and a file in a deeper folder of sub.
  for (const p of ['/dav/l/f', '/dav/l/f/empty', '/dav/l/f/sub']) t.is((await dav(node, 'MKCOL', p)).status, 201)
  for (const p of ['/f/a.txt', '/f/b.txt', '/f/sub.txt']) t.is((await dav(node, 'PUT', `/dav/l${p}`, {}, p)).status, 201)
  // Through the HTTP API, which makes no folders: sub2 and sub/deep exist only by these paths.
  for (const p of ['/f/sub2/x.txt', '/f/sub/deep/y.txt']) await clientOf(node).put('l', p, Readable.from([Buffer.from(p)]))
  for (let i = 0; i < BELOW; i += 500) {
    await node.volumes.writeTree('l', Array.from({ length: Math.min(500, BELOW - i) }, (_, j) => ({ op: 'folder' as const, path: `/f/sub/m${String(i + j).padStart(5, '0')}` })))
  }
  const want = ['/dav/l/f/', '/dav/l/f/a.txt', '/dav/l/f/b.txt', '/dav/l/f/empty/', '/dav/l/f/sub/', '/dav/l/f/sub.txt', '/dav/l/f/sub2/']

  const res = await dav(node, 'PROPFIND', '/dav/l/f/', { depth: '1' }, '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>')
  t.is(res.status, 207)
  const hrefs = [...res.text.matchAll(/<D:href>([^<]*)<\/D:href>/g)].map(m => m[1])
  t.deepEqual(hrefs, want)

  // The same listing through a DavTree over the node's own volume service, counting what the
  // index hands out: the direct members plus one record per child folder, not BELOW more.
  let read = 0
  const counted: DavVolumes = {
    ...node.volumes,
    volume: async (v) => await node.volumes.volume(v),
    stat: async (v, p) => await node.volumes.stat(v, p),
    readFile: node.volumes.readFile.bind(node.volumes),
    putFile: node.volumes.putFile.bind(node.volumes),
    writeTree: node.volumes.writeTree.bind(node.volumes),
    listFiles: async function * (v, prefix, signal, from): AsyncGenerator<FileRecord> {
      for await (const r of node.volumes.listFiles(v, prefix, signal, from)) { read++; yield r }
    }
  }
  const listed: string[] = []
  for await (const e of new DavTree(counted).children('l', '/f')) listed.push(`/dav/l${e.path}${e.kind === 'folder' ? '/' : ''}`)
  t.deepEqual(listed, want.slice(1))
  t.true(read <= 10, `records read for a listing of 6: ${read}`)

  // Depth 1 of the big folder itself still lists all of it.
  const sub = await dav(node, 'PROPFIND', '/dav/l/f/sub/', { depth: '1' })
  t.is([...sub.text.matchAll(/<D:response>/g)].length, 1 + BELOW + 1, 'sub itself, its markers and deep/')
})

test('a file with records below its path (made apart on two members, or through the JSON API) is one file: listed once, deleted and overwritten alone', async t => {
  const node = await startNode(t)
  await clientOf(node).createVolume({ name: 'fx' })
  const put = async (p: string, text: string): Promise<void> => { await clientOf(node).put('fx', p, Readable.from([Buffer.from(text)])) }
  await put('/x', 'the file x')
  await put('/x/below.txt', 'below x')
  await put('/y', 'the file y')
  await put('/y/below.txt', 'below y')
  await put('/z.txt', 'z')
  const listing = await dav(node, 'PROPFIND', '/dav/fx/', { depth: '1' })
  t.is(listing.status, 207)
  const hrefs = [...listing.text.matchAll(/<D:href>([^<]*)<\/D:href>/g)].map(m => m[1])
  t.deepEqual(hrefs, ['/dav/fx/', '/dav/fx/x', '/dav/fx/y', '/dav/fx/z.txt'], 'each name once, as what PROPFIND of it answers')
  t.notRegex((await dav(node, 'PROPFIND', '/dav/fx/x', { depth: '0' })).text, /<D:collection\/>/)
  // DELETE of the file x, COPY onto the file y: the records below their paths stay.
  t.is((await dav(node, 'DELETE', '/dav/fx/x')).status, 204)
  t.is((await dav(node, 'COPY', '/dav/fx/z.txt', { destination: '/dav/fx/y' })).status, 204)
  t.is((await dav(node, 'GET', '/dav/fx/y')).text, 'z')
  t.is((await dav(node, 'GET', '/dav/fx/x/below.txt')).text, 'below x')
  t.is((await dav(node, 'GET', '/dav/fx/y/below.txt')).text, 'below y')
  const after = [...(await dav(node, 'PROPFIND', '/dav/fx/', { depth: '1' })).text.matchAll(/<D:href>([^<]*)<\/D:href>/g)].map(m => m[1])
  t.deepEqual(after, ['/dav/fx/', '/dav/fx/x/', '/dav/fx/y', '/dav/fx/z.txt'], 'x, its file gone, is the folder of what lies below it')
})
