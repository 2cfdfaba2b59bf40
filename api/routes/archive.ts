/** Tar archives of a volume: `PUT|POST /v1/volumes/:vol/import?prefix=`, `GET /v1/volumes/:vol/export?prefix=`. */
import type { Router } from '../router.js'
import type { FileAccess } from '../node-api.js'
import { normalizePrefix } from '../../core/paths.js'
import { importTar, exportTar } from '../archive.js'
import { sendJson, sendStream } from '../respond.js'
import { decodeSegment } from '../validate.js'

/**
 * The volume a route names and its `?prefix=`: the volume must exist, checked before the answer's
 * header goes out (afterwards an error can only cut the connection). Files' list route shares it.
 */
export async function volumeAndPrefix (node: FileAccess, vol: string, url: URL): Promise<{ name: string, prefix: string }> {
  const name = decodeSegment(vol)
  await node.volumes.volume(name)
  return { name, prefix: normalizePrefix(url.searchParams.get('prefix') ?? undefined) }
}

export function archiveRoutes (router: Router, node: FileAccess): void {
  const importRoute = /^\/v1\/volumes\/([^/]+)\/import$/
  const doImport = async (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, vol: string, url: URL): Promise<void> => {
    const { name, prefix } = await volumeAndPrefix(node, vol, url)
    const controller = new AbortController()
    req.once('aborted', () => controller.abort())
    res.once('close', () => { if (!res.writableFinished) controller.abort() })
    let result
    try {
      result = await importTar(node.volumes, name, prefix, req, controller.signal)
    } catch (err) {
      // The import stopped reading the body where it failed, and Node cannot take the next
      // request off a connection whose body was left unread: it would sit until the idle
      // timeout reset it. Closed after the answer instead, so a client's next request goes
      // on a new connection.
      if (!res.headersSent) res.setHeader('connection', 'close')
      throw err
    }
    sendJson(res, 200, result)
  }
  router.add('PUT', importRoute, async (req, res, [vol], url) => { await doImport(req, res, vol, url) })
  router.add('POST', importRoute, async (req, res, [vol], url) => { await doImport(req, res, vol, url) })
  router.add('GET', /^\/v1\/volumes\/([^/]+)\/export$/, async (_req, res, [vol], url) => {
    const { name, prefix } = await volumeAndPrefix(node, vol, url)
    const controller = new AbortController()
    res.once('close', () => controller.abort())
    const body = exportTar(node.volumes, name, prefix, controller.signal)
    await sendStream(res, 200, { 'content-type': 'application/x-tar' }, (async function * () { yield * body })())
  })
}
