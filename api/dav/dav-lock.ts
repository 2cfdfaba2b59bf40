/** LOCK (new, on an unmapped URL too, and refresh) and UNLOCK (RFC 4918 §9.10-9.11). */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { InvalidInputError, ReplicantError, Codes } from '../../core/errors.js'
import { DAV_NS, elements, readXml, serialize, isElement, esc } from './xml.js'
import { activeLock } from './propfind.js'
import { timeoutOf, type DavLock } from './locks.js'
import { header, sendEmpty, sendXml, type DavContext } from './dav-context.js'
import { parentOf, type DavTarget } from './dav-paths.js'
import { lockTokenHeader, parseIf, submittedTokens } from './if-header.js'

function lockAnswer (res: ServerResponse, volume: string, l: DavLock, status: number, withToken: boolean): void {
  sendXml(res, status, `<D:prop xmlns:D="DAV:"><D:lockdiscovery>${activeLock(volume, l)}</D:lockdiscovery></D:prop>`,
    withToken ? { 'lock-token': `<${l.token}>` } : {})
}

export async function lock (ctx: DavContext, req: IncomingMessage, res: ServerResponse, t: DavTarget): Promise<void> {
  const body = await readXml(req)
  const timeoutS = timeoutOf(header(req, 'timeout'))
  if (body === undefined) {
    // A refresh: the If header names the lock.
    const tokens = submittedTokens(parseIf(header(req, 'if')))
    const held = ctx.locks.covering(t.volume, t.path).find(l => tokens.has(l.token))
    if (held === undefined) throw new ReplicantError(Codes.PRECONDITION_FAILED, 'a LOCK without a body refreshes a lock: name it in an If header')
    lockAnswer(res, t.volume, ctx.locks.refresh(held.token, timeoutS)!, 200, false)
    return
  }
  if (body.ns !== DAV_NS || body.local !== 'lockinfo') throw new InvalidInputError(Codes.BAD_REQUEST, 'LOCK body must be a DAV:lockinfo element')
  const part = (name: string): ReturnType<typeof elements>[number] | undefined => elements(body).find(e => e.ns === DAV_NS && e.local === name)
  const scopeEl = part('lockscope')
  const scope = scopeEl === undefined ? undefined : elements(scopeEl).find(e => e.ns === DAV_NS)?.local
  if (scope !== 'exclusive' && scope !== 'shared') throw new InvalidInputError(Codes.BAD_REQUEST, 'lockscope must be exclusive or shared')
  const ownerEl = part('owner')
  const owner = ownerEl === undefined ? '' : ownerEl.children.map(c => isElement(c) ? serialize(c) : esc(c)).join('')
  const depthHeader = (header(req, 'depth') ?? 'infinity').trim().toLowerCase()
  if (depthHeader !== '0' && depthHeader !== 'infinity') throw new InvalidInputError(Codes.BAD_REQUEST, 'LOCK Depth must be 0 or infinity')
  if (t.path === '/') throw new ReplicantError(Codes.DAV_FORBIDDEN, 'the volume itself cannot be locked')
  const entry = await ctx.tree.resolve(t.volume, t.path)
  await ctx.preconditions(req, t, entry)
  let status = 200
  if (entry === undefined) {
    // Locking an unmapped URL makes an empty file (RFC 4918 §7.3).
    const parent = await ctx.tree.resolve(t.volume, parentOf(t.path))
    if (parent?.kind !== 'folder') throw new ReplicantError(Codes.NO_PARENT_FOLDER, `${parentOf(t.path)} is not a folder`)
  }
  const l = ctx.locks.create({ volume: t.volume, path: t.path, depth: depthHeader === '0' ? 0 : 'infinity', scope, owner, timeoutS })
  if (entry === undefined) {
    try {
      await ctx.volumes.putFile(t.volume, t.path, (async function * () {})())
    } catch (err) {
      ctx.locks.remove(l.token)
      throw err
    }
    status = 201
  }
  lockAnswer(res, t.volume, l, status, true)
}

export function unlock (ctx: DavContext, req: IncomingMessage, res: ServerResponse, t: DavTarget): void {
  const token = lockTokenHeader(header(req, 'lock-token'))
  if (token === undefined) throw new InvalidInputError(Codes.BAD_REQUEST, 'UNLOCK needs a Lock-Token header')
  const held = ctx.locks.covering(t.volume, t.path).find(l => l.token === token)
  if (held === undefined) throw new ReplicantError(Codes.BAD_STATE, `no lock ${token} on ${t.path}`, { davError: 'lock-token-matches-request-uri' })
  ctx.locks.remove(token)
  sendEmpty(res, 204)
}
