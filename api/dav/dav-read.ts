/** WebDAV reads: OPTIONS, PROPFIND (Depth 0 and 1), GET and HEAD with Range. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { statfs } from 'node:fs/promises'
import { NotFoundError, ReplicantError, Codes } from '../../core/errors.js'
import { parseRange } from '../http-range.js'
import { sendStream } from '../respond.js'
import { readXml } from './xml.js'
import { parsePropfind, responseXml, etagOf, type ResourceFacts } from './propfind.js'
import { MULTISTATUS_HEAD, header, write, type DavContext } from './dav-context.js'
import type { DavTarget } from './dav-paths.js'
import type { Entry } from './dav-tree.js'

export const DAV_METHODS = ['OPTIONS', 'PROPFIND', 'PROPPATCH', 'GET', 'HEAD', 'PUT', 'DELETE', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK']

export function options (res: ServerResponse): void {
  res.writeHead(200, { dav: '1, 2', allow: DAV_METHODS.join(', '), 'ms-author-via': 'DAV', 'accept-ranges': 'bytes', 'content-length': 0 })
  res.end()
}

export async function found (ctx: DavContext, t: DavTarget): Promise<Entry> {
  const entry = await ctx.tree.resolve(t.volume, t.path)
  if (entry === undefined) throw new NotFoundError(Codes.FILE_NOT_FOUND, `nothing at ${t.path} in volume '${t.volume}'`, { volume: t.volume, path: t.path })
  return entry
}

export async function propfind (ctx: DavContext, req: IncomingMessage, res: ServerResponse, t: DavTarget): Promise<void> {
  const depth = (header(req, 'depth') ?? '1').trim().toLowerCase()
  if (depth === 'infinity') throw new ReplicantError(Codes.DAV_FORBIDDEN, 'PROPFIND with Depth: infinity is refused: ask with Depth 1, folder by folder', { davError: 'propfind-finite-depth' })
  if (depth !== '0' && depth !== '1') throw new ReplicantError(Codes.BAD_REQUEST, `Depth must be 0 or 1, not ${depth}`)
  const request = parsePropfind(await readXml(req))
  const entry = await found(ctx, t)
  const controller = new AbortController()
  res.once('close', () => controller.abort())
  let quota: { available: number, used: number } | undefined
  const folderTime = (await ctx.volumes.volume(t.volume)).createdAt
  const facts = (e: Entry): ResourceFacts => ({
    volume: t.volume,
    entry: e,
    folderTime,
    locks: ctx.locks.covering(t.volume, e.path),
    dead: ctx.props.list(t.volume, e.path),
    quota: async () => {
      if (quota !== undefined && e.path === t.path) return quota
      const fs = await statfs(ctx.node.dataDir)
      let used = 0
      for await (const r of ctx.tree.descendants(t.volume, e.path, controller.signal)) used += r.size
      const q = { available: fs.bavail * fs.bsize, used }
      if (e.path === t.path) quota = q
      return q
    }
  })
  // The first response is built before the 207 goes out, so an error there is still a status.
  const first = await responseXml(facts(entry), request)
  res.writeHead(207, { 'content-type': 'application/xml; charset=utf-8' })
  await write(res, MULTISTATUS_HEAD + first)
  if (depth === '1' && entry.kind === 'folder') {
    for await (const child of ctx.tree.children(t.volume, t.path, controller.signal)) {
      await write(res, await responseXml(facts(child), request))
    }
  }
  res.end('</D:multistatus>')
}

export async function get (ctx: DavContext, req: IncomingMessage, res: ServerResponse, t: DavTarget, withBody: boolean): Promise<void> {
  const entry = await found(ctx, t)
  if (entry.kind === 'folder') {
    const text = `${t.path} in volume ${t.volume} is a folder: list it with PROPFIND\n`
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) })
    res.end(withBody ? text : undefined)
    return
  }
  const rec = entry.rec
  const range = parseRange(req.headers.range, rec.size)
  const headers: Record<string, string | number> = {
    'content-type': 'application/octet-stream',
    'accept-ranges': 'bytes',
    'last-modified': new Date(rec.mtime).toUTCString(),
    etag: etagOf(entry)!,
    'content-length': range !== undefined ? range.end - range.start + 1 : rec.size
  }
  if (range !== undefined) headers['content-range'] = `bytes ${range.start}-${range.end}/${rec.size}`
  const status = range !== undefined ? 206 : 200
  if (!withBody) { res.writeHead(status, headers); res.end(); return }
  const controller = new AbortController()
  res.once('close', () => controller.abort())
  await sendStream(res, status, headers, ctx.volumes.readFile(t.volume, rec, range, controller.signal))
}
