/**
 * WebDAV writes: PUT (streamed, with or without Content-Length), DELETE, MKCOL, COPY and MOVE
 * (new records reusing the chunks, plus tombstones: no byte is read or written), PROPPATCH.
 * Every write goes through the volume service, so the volume's write mode applies.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { InvalidInputError, ReplicantError, Codes } from '../../core/errors.js'
import { MAX_TREE_WRITES, type TreeWrite } from '../../replication/volume-service.js'
import { intHeader, declaredLength } from '../validate.js'
import { DAV_NS, elements, esc, readXml, serialize, emptyElement } from './xml.js'
import { PROTECTED, etagOf } from './propfind.js'
import { hasBody, header, sendEmpty, sendXml, type DavContext } from './dav-context.js'
import { destinationOf, parentOf, type DavTarget } from './dav-paths.js'
import { found } from './dav-read.js'
import { within } from './locks.js'

/** Refuses a write whose parent is not a folder (RFC 4918: 409). */
async function needParent (ctx: DavContext, t: DavTarget): Promise<void> {
  const parent = await ctx.tree.resolve(t.volume, parentOf(t.path))
  if (parent?.kind !== 'folder') throw new ReplicantError(Codes.NO_PARENT_FOLDER, `${parentOf(t.path)} is not a folder of volume '${t.volume}'`, { path: t.path })
}

function notRoot (t: DavTarget, what: string): void {
  if (t.path === '/') throw new ReplicantError(Codes.DAV_FORBIDDEN, `${what} of the volume itself is refused`)
}

export async function put (ctx: DavContext, req: IncomingMessage, res: ServerResponse, t: DavTarget): Promise<void> {
  notRoot(t, 'PUT')
  const entry = await ctx.tree.resolve(t.volume, t.path)
  if (entry?.kind === 'folder') throw new ReplicantError(Codes.METHOD_NOT_ALLOWED, `${t.path} is a folder`, { allow: ['PROPFIND', 'DELETE', 'MOVE', 'COPY', 'LOCK', 'UNLOCK', 'PROPPATCH'] })
  const tokens = await ctx.preconditions(req, t, entry)
  ctx.locks.checkWrite(t.volume, t.path, tokens)
  if (entry === undefined) {
    await needParent(ctx, t)
    ctx.locks.checkWrite(t.volume, parentOf(t.path), tokens)
  }
  const declared = declaredLength(req)
  let received = 0
  const body = (async function * (): AsyncGenerator<Uint8Array> {
    for await (const part of req as AsyncIterable<Buffer>) { received += part.byteLength; yield part }
    if (declared !== undefined && received !== declared) throw new InvalidInputError(Codes.BAD_REQUEST, `body ended after ${received} of ${declared} bytes`)
  })()
  const controller = new AbortController()
  req.once('aborted', () => controller.abort())
  // ownCloud's mtime header (seconds), which rclone and others send to keep modification times.
  const ocMtime = intHeader(req, 'x-oc-mtime')
  const rec = await ctx.volumes.putFile(t.volume, t.path, body, { mtime: ocMtime !== undefined ? ocMtime * 1000 : undefined, signal: controller.signal })
  sendEmpty(res, entry === undefined ? 201 : 204, { etag: etagOf({ kind: 'file', path: rec.path, rec })!, ...(ocMtime !== undefined ? { 'x-oc-mtime': 'accepted' } : {}) })
}

/** Runs tree writes in batches the volume service takes. */
class Batch {
  private writes: TreeWrite[] = []
  constructor (private readonly ctx: DavContext, private readonly volume: string) {}
  async add (w: TreeWrite): Promise<void> {
    this.writes.push(w)
    if (this.writes.length >= MAX_TREE_WRITES - 1) await this.flush()
  }

  async flush (): Promise<void> {
    if (this.writes.length === 0) return
    const w = this.writes
    this.writes = []
    await this.ctx.volumes.writeTree(this.volume, w)
  }
}

/** Tombstones for `path` and everything under it. */
async function deleteTree (ctx: DavContext, volume: string, path: string, batch: Batch): Promise<void> {
  for await (const r of ctx.tree.descendants(volume, path)) await batch.add({ op: 'delete', path: r.path })
  if (path !== '/') await batch.add({ op: 'delete', path })
}

/** A folder left empty by a delete or move keeps existing: it gets a marker. */
async function keepFolder (ctx: DavContext, volume: string, path: string): Promise<void> {
  if (path === '/') return
  if (await ctx.tree.resolve(volume, path) === undefined) await ctx.volumes.writeTree(volume, [{ op: 'folder', path }])
}

export async function remove (ctx: DavContext, req: IncomingMessage, res: ServerResponse, t: DavTarget): Promise<void> {
  notRoot(t, 'DELETE')
  const entry = await found(ctx, t)
  const tokens = await ctx.preconditions(req, t, entry)
  ctx.locks.checkWrite(t.volume, t.path, tokens, true)
  const batch = new Batch(ctx, t.volume)
  // A file is deleted alone: records below its path (see DavTree.resolve) are not under it.
  if (entry.kind === 'file') await batch.add({ op: 'delete', path: t.path })
  else await deleteTree(ctx, t.volume, t.path, batch)
  await batch.flush()
  ctx.props.dropTree(t.volume, t.path)
  ctx.locks.removeInside(t.volume, t.path)
  await keepFolder(ctx, t.volume, parentOf(t.path))
  sendEmpty(res, 204)
}

export async function mkcol (ctx: DavContext, req: IncomingMessage, res: ServerResponse, t: DavTarget): Promise<void> {
  if (hasBody(req)) throw new InvalidInputError(Codes.UNSUPPORTED_MEDIA_TYPE, 'MKCOL takes no body')
  const entry = await ctx.tree.resolve(t.volume, t.path)
  if (entry !== undefined) throw new ReplicantError(Codes.ALREADY_EXISTS, `${t.path} exists`, { allow: ['PROPFIND', 'DELETE', 'MOVE', 'COPY'] })
  const tokens = await ctx.preconditions(req, t, entry)
  await needParent(ctx, t)
  ctx.locks.checkWrite(t.volume, parentOf(t.path), tokens)
  await ctx.volumes.writeTree(t.volume, [{ op: 'folder', path: t.path }])
  sendEmpty(res, 201)
}

export async function copyOrMove (ctx: DavContext, req: IncomingMessage, res: ServerResponse, t: DavTarget, move: boolean): Promise<void> {
  const dest = destinationOf(req, t.volume)
  const src = await found(ctx, t)
  const depth = (header(req, 'depth') ?? 'infinity').trim().toLowerCase()
  if (depth !== 'infinity' && (move || depth !== '0')) throw new InvalidInputError(Codes.BAD_REQUEST, `Depth ${depth} is not allowed for ${move ? 'MOVE' : 'COPY'}`)
  if (dest.path === t.path) throw new ReplicantError(Codes.DAV_FORBIDDEN, 'source and destination are the same')
  if (src.kind === 'folder' && within(dest.path, t.path)) throw new ReplicantError(Codes.DAV_FORBIDDEN, 'a folder cannot go inside itself')
  if (dest.path === '/' || (move && t.path === '/')) throw new ReplicantError(Codes.DAV_FORBIDDEN, 'the volume itself cannot be overwritten or moved')
  // Overwriting a folder that holds the source would delete the source before it is copied.
  if (within(t.path, dest.path)) throw new ReplicantError(Codes.DAV_FORBIDDEN, `${dest.path} holds ${t.path}: it cannot be overwritten by it`)
  const tokens = await ctx.preconditions(req, t, src)
  if (move) ctx.locks.checkWrite(t.volume, t.path, tokens, true)
  const existing = await ctx.tree.resolve(dest.volume, dest.path)
  const overwrite = (header(req, 'overwrite') ?? 'T').trim().toUpperCase() !== 'F'
  if (existing !== undefined && !overwrite) throw new ReplicantError(Codes.PRECONDITION_FAILED, `${dest.path} exists and Overwrite is F`)
  await needParent(ctx, dest)
  ctx.locks.checkWrite(dest.volume, dest.path, tokens, true)
  if (existing === undefined) ctx.locks.checkWrite(dest.volume, parentOf(dest.path), tokens)

  const batch = new Batch(ctx, t.volume)
  const to = (p: string): string => dest.path + p.slice(t.path === '/' ? 0 : t.path.length)
  // A file in the way is replaced by the copy's own record at its path (and records below
  // its path, see DavTree.resolve, are left alone); a folder in the way is deleted first, in
  // batches of its own.
  if (existing?.kind === 'folder') {
    await deleteTree(ctx, dest.volume, dest.path, batch)
    await batch.flush()
  }
  if (src.kind === 'file') {
    await batch.add({ op: 'copy', from: t.path, path: dest.path })
    if (move) await batch.add({ op: 'delete', path: t.path })
  } else {
    await batch.add(src.rec !== undefined ? { op: 'copy', from: t.path, path: dest.path } : { op: 'folder', path: dest.path })
    if (depth === 'infinity') {
      for await (const r of ctx.tree.descendants(t.volume, t.path)) {
        await batch.add({ op: 'copy', from: r.path, path: to(r.path) })
        if (move) await batch.add({ op: 'delete', path: r.path })
      }
    }
    if (move && src.rec !== undefined) await batch.add({ op: 'delete', path: t.path })
  }
  await batch.flush()
  ctx.props.copyTree(t.volume, t.path, dest.path, move)
  if (move) {
    ctx.locks.removeInside(t.volume, t.path)
    await keepFolder(ctx, t.volume, parentOf(t.path))
  }
  sendEmpty(res, existing === undefined ? 201 : 204)
}

export async function proppatch (ctx: DavContext, req: IncomingMessage, res: ServerResponse, t: DavTarget): Promise<void> {
  const body = await readXml(req)
  if (body === undefined || body.ns !== DAV_NS || body.local !== 'propertyupdate') throw new InvalidInputError(Codes.BAD_REQUEST, 'PROPPATCH body must be a DAV:propertyupdate element')
  const entry = await found(ctx, t)
  const tokens = await ctx.preconditions(req, t, entry)
  ctx.locks.checkWrite(t.volume, t.path, tokens)
  const changes: Array<{ remove: boolean, prop: { ns: string, local: string, xml: string } }> = []
  for (const op of elements(body)) {
    if (op.ns !== DAV_NS || (op.local !== 'set' && op.local !== 'remove')) continue
    for (const prop of elements(op).filter(e => e.ns === DAV_NS && e.local === 'prop')) {
      for (const p of elements(prop)) changes.push({ remove: op.local === 'remove', prop: { ns: p.ns, local: p.local, xml: serialize(p) } })
    }
  }
  // Live properties are computed: setting one fails, and then, PROPPATCH being atomic, all do.
  const refused = changes.filter(c => c.prop.ns === DAV_NS && PROTECTED.has(c.prop.local))
  const name = (c: typeof changes[number]): string => emptyElement(c.prop.ns, c.prop.local)
  let stats: string
  if (refused.length > 0) {
    const rest = changes.filter(c => !refused.includes(c))
    stats = `<D:propstat><D:prop>${refused.map(name).join('')}</D:prop><D:status>HTTP/1.1 403 Forbidden</D:status></D:propstat>` +
      (rest.length > 0 ? `<D:propstat><D:prop>${rest.map(name).join('')}</D:prop><D:status>HTTP/1.1 424 Failed Dependency</D:status></D:propstat>` : '')
  } else {
    ctx.props.apply(t.volume, t.path, changes)
    stats = `<D:propstat><D:prop>${changes.map(name).join('')}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>`
  }
  const href = req.url?.split('?')[0] ?? ''
  sendXml(res, 207, `<D:multistatus xmlns:D="DAV:"><D:response><D:href>${esc(href)}</D:href>${stats}</D:response></D:multistatus>`)
}
