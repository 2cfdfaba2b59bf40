/**
 * PROPFIND answers: which properties a request asks for, and each resource's `<D:response>`.
 * Live properties are computed from the record; dead ones come from DeadProps. The quota
 * properties (RFC 4331) are computed only when named (allprop leaves them out, as the RFC says).
 */
import { DAV_NS, elements, emptyElement, esc, type XmlElement } from './xml.js'
import { InvalidInputError, Codes } from '../../core/errors.js'
import type { DavLock } from './locks.js'
import type { Entry } from './dav-tree.js'
import type { DeadProp } from './dead-props.js'
import { baseName, hrefOf } from './dav-paths.js'

export type PropRequest =
  | { kind: 'allprop' }
  | { kind: 'propname' }
  | { kind: 'prop', names: Array<{ ns: string, local: string }> }

export function parsePropfind (body: XmlElement | undefined): PropRequest {
  if (body === undefined) return { kind: 'allprop' }
  if (body.ns !== DAV_NS || body.local !== 'propfind') throw new InvalidInputError(Codes.BAD_REQUEST, 'PROPFIND body must be a DAV:propfind element')
  for (const el of elements(body)) {
    if (el.ns !== DAV_NS) continue
    if (el.local === 'allprop') return { kind: 'allprop' }
    if (el.local === 'propname') return { kind: 'propname' }
    if (el.local === 'prop') return { kind: 'prop', names: elements(el).map(p => ({ ns: p.ns, local: p.local })) }
  }
  throw new InvalidInputError(Codes.BAD_REQUEST, 'DAV:propfind needs prop, allprop or propname')
}

export const LIVE_PROPS = ['creationdate', 'displayname', 'getcontentlength', 'getcontenttype', 'getetag', 'getlastmodified', 'resourcetype', 'supportedlock', 'lockdiscovery'] as const
const QUOTA_PROPS = ['quota-available-bytes', 'quota-used-bytes']
/** Live properties a client may not set. */
export const PROTECTED = new Set<string>([...LIVE_PROPS, ...QUOTA_PROPS])

export function etagOf (entry: Entry): string | undefined {
  return entry.kind === 'file' ? `"${entry.rec.seq}-${entry.rec.size}"` : undefined
}

export function activeLock (volume: string, l: DavLock): string {
  return '<D:activelock><D:locktype><D:write/></D:locktype>' +
    `<D:lockscope><D:${l.scope}/></D:lockscope><D:depth>${l.depth === 0 ? '0' : 'infinity'}</D:depth>` +
    (l.owner !== '' ? `<D:owner>${l.owner}</D:owner>` : '') +
    `<D:timeout>Second-${Math.max(0, Math.round((l.expires - Date.now()) / 1000))}</D:timeout>` +
    `<D:locktoken><D:href>${esc(l.token)}</D:href></D:locktoken>` +
    `<D:lockroot><D:href>${esc(hrefOf(volume, l.path, false))}</D:href></D:lockroot></D:activelock>`
}

export interface ResourceFacts {
  volume: string
  entry: Entry
  locks: DavLock[]
  dead: DeadProp[]
  /** The time shown for a folder without a marker (implicit, or the volume): the volume's creation. */
  folderTime: number
  /** Asked only when a quota property is named. */
  quota: () => Promise<{ available: number, used: number }>
}

/** The value of live property `name`, or undefined when the resource has none. */
async function live (f: ResourceFacts, name: string): Promise<string | undefined> {
  const { entry } = f
  const mtime = entry.rec?.mtime ?? f.folderTime
  switch (name) {
    case 'creationdate': return new Date(mtime).toISOString()
    case 'displayname': return esc(baseName(entry.path) || f.volume)
    case 'getcontentlength': return entry.kind === 'file' ? String(entry.rec.size) : undefined
    case 'getcontenttype': return entry.kind === 'file' ? 'application/octet-stream' : undefined
    case 'getetag': { const e = etagOf(entry); return e === undefined ? undefined : esc(e) }
    case 'getlastmodified': return new Date(mtime).toUTCString()
    case 'resourcetype': return entry.kind === 'folder' ? '<D:collection/>' : ''
    case 'supportedlock':
      return ['exclusive', 'shared'].map(s => `<D:lockentry><D:lockscope><D:${s}/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>`).join('')
    case 'lockdiscovery': return f.locks.map(l => activeLock(f.volume, l)).join('')
    case 'quota-available-bytes': return entry.kind === 'folder' ? String((await f.quota()).available) : undefined
    case 'quota-used-bytes': return entry.kind === 'folder' ? String((await f.quota()).used) : undefined
    default: return undefined
  }
}

function propstat (props: string[], status: string): string {
  return props.length === 0 ? '' : `<D:propstat><D:prop>${props.join('')}</D:prop><D:status>HTTP/1.1 ${status}</D:status></D:propstat>`
}

/** One resource's `<D:response>` for `request`. */
export async function responseXml (f: ResourceFacts, request: PropRequest): Promise<string> {
  const found: string[] = []
  const missing: string[] = []
  if (request.kind === 'propname') {
    for (const n of LIVE_PROPS) if (await live(f, n) !== undefined) found.push(`<D:${n}/>`)
    for (const d of f.dead) found.push(emptyElement(d.ns, d.local))
  } else if (request.kind === 'allprop') {
    for (const n of LIVE_PROPS) {
      const v = await live(f, n)
      if (v !== undefined) found.push(`<D:${n}>${v}</D:${n}>`)
    }
    for (const d of f.dead) found.push(d.xml)
  } else {
    for (const { ns, local } of request.names) {
      const v = ns === DAV_NS ? await live(f, local) : undefined
      const d = v === undefined ? f.dead.find(p => p.ns === ns && p.local === local) : undefined
      if (v !== undefined) found.push(`<D:${local}>${v}</D:${local}>`)
      else if (d !== undefined) found.push(d.xml)
      else missing.push(emptyElement(ns, local))
    }
  }
  return `<D:response><D:href>${esc(hrefOf(f.volume, f.entry.path, f.entry.kind === 'folder'))}</D:href>` +
    propstat(found, '200 OK') + propstat(missing, '404 Not Found') + '</D:response>'
}
