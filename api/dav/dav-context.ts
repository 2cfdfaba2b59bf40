/** What every WebDAV handler shares: the tree, the locks, the dead properties, and the If check. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { once } from 'node:events'
import { ReplicantError, Codes } from '../../core/errors.js'
import { DavTree, type DavVolumes, type Entry } from './dav-tree.js'
import { LockTable } from './locks.js'
import { DeadProps } from './dead-props.js'
import { evaluateIf, parseIf, submittedTokens } from './if-header.js'
import { etagOf } from './propfind.js'
import { targetOfUrl, type DavTarget } from './dav-paths.js'

/** What the WebDAV routes need of the node (ReplicantNode satisfies it). */
export interface DavNode {
  readonly volumes: DavVolumes
  /** Free space for the quota properties is that of the disk holding the data dir. */
  readonly dataDir: string
}

export class DavContext {
  readonly tree: DavTree
  readonly locks = new LockTable()
  readonly props = new DeadProps()

  constructor (readonly node: DavNode) {
    this.tree = new DavTree(node.volumes)
  }

  get volumes (): DavVolumes { return this.node.volumes }

  /**
   * Checks the If header against the target (and the resources it tags) and, when it holds,
   * If-Match / If-None-Match; returns the lock tokens the request submitted.
   */
  async preconditions (req: IncomingMessage, target: DavTarget, entry: Entry | undefined): Promise<Set<string>> {
    const lists = parseIf(header(req, 'if'))
    const holds = await evaluateIf(lists, async (resource) => {
      let t = target
      let e = entry
      if (resource !== undefined) {
        t = targetOfUrl(req, resource)
        e = t.volume === target.volume && t.path === target.path ? entry : await this.tree.resolve(t.volume, t.path)
      }
      const tokens = new Set(e === undefined ? [] : this.locks.covering(t.volume, t.path).map(l => l.token))
      return { etag: e === undefined ? undefined : etagOf(e), tokens }
    })
    if (!holds) throw new ReplicantError(Codes.PRECONDITION_FAILED, 'the If header does not hold')
    const ifMatch = header(req, 'if-match')
    const etag = entry === undefined ? undefined : etagOf(entry) ?? '"folder"'
    if (ifMatch !== undefined && (etag === undefined || (ifMatch.trim() !== '*' && !ifMatch.split(',').map(s => s.trim()).includes(etag)))) {
      throw new ReplicantError(Codes.PRECONDITION_FAILED, 'If-Match does not hold')
    }
    const ifNone = header(req, 'if-none-match')
    if (ifNone !== undefined && etag !== undefined && (ifNone.trim() === '*' || ifNone.split(',').map(s => s.trim()).includes(etag))) {
      throw new ReplicantError(Codes.PRECONDITION_FAILED, 'If-None-Match does not hold')
    }
    return submittedTokens(lists)
  }
}

export function header (req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v.join(', ') : v
}

/** Whether a request carries a body (MKCOL with one is refused: 415). */
export function hasBody (req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0
}

/** Writes `text`, waiting for the socket when its buffer is full. */
export async function write (res: ServerResponse, text: string): Promise<void> {
  if (!res.write(text)) await once(res, 'drain')
}

export const MULTISTATUS_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">'

export function sendXml (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  const text = `<?xml version="1.0" encoding="utf-8"?>\n${body}`
  res.writeHead(status, { ...headers, 'content-type': 'application/xml; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

export function sendEmpty (res: ServerResponse, status: number, headers: Record<string, string | number> = {}): void {
  res.writeHead(status, { ...headers, 'content-length': 0 })
  res.end()
}
