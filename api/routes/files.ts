/** Files of a volume: list, read (whole or a range, live or as a snapshot shows it), write, delete. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Router } from '../router.js'
import type { FileAccess } from '../node-api.js'
import type { FileRemoved, FileView } from '../types.js'
import { InvalidInputError, Codes } from '../../core/errors.js'
import { fileView } from '../../replication/volume-service.js'
import { parseRange } from '../http-range.js'
import { archiveRoutes, volumeAndPrefix } from './archive.js'
import { sendJson, sendJsonList, sendStream } from '../respond.js'
import { decodeSegment, decodePath, intHeader, declaredLength } from '../validate.js'

const FILE_ROUTE = /^\/v1\/volumes\/([^/]+)\/files\/(.+)$/
/** PUT bodies up to this size (by content-length) are buffered and batched; bigger ones stream. */
const BUFFERED_PUT_BYTES = 256 * 1024

export function fileRoutes (router: Router, node: FileAccess): void {
  archiveRoutes(router, node)
  router.add('GET', /^\/v1\/volumes\/([^/]+)\/files$/, async (_req, res, [vol], url) => {
    const { name, prefix } = await volumeAndPrefix(node, vol, url)
    const controller = new AbortController()
    res.once('close', () => controller.abort())
    const snapshot = url.searchParams.get('snapshot')
    if (snapshot !== null) await node.store.getSnapshot(name, snapshot)
    const files = snapshot !== null ? node.volumes.listFilesAt(name, snapshot, prefix) : node.volumes.listFiles(name, prefix, controller.signal)
    await sendJsonList(res, 'files', (async function * (): AsyncGenerator<FileView> { for await (const f of files) yield fileView(f) })())
  })
  router.add('GET', FILE_ROUTE, async (req, res, params, url) => { await getFile(node, req, res, params, true, url) })
  router.add('HEAD', FILE_ROUTE, async (req, res, params, url) => { await getFile(node, req, res, params, false, url) })
  router.add('PUT', FILE_ROUTE, async (req, res, [vol, path]) => {
    const declared = declaredLength(req)
    const opts = { mode: intHeader(req, 'x-replicant-mode', 8), mtime: intHeader(req, 'x-replicant-mtime') }
    if (declared !== undefined && declared <= BUFFERED_PUT_BYTES && node.volumes.batcher.admit(declared)) {
      // Small: read whole (its length is known and bounded, and so is the sum of such bodies
      // held), then written with the small PUTs that arrive meanwhile (VolumeService.putBuffered).
      try {
        const parts: Buffer[] = []
        let received = 0
        for await (const part of req as AsyncIterable<Buffer>) {
          received += part.byteLength
          if (received > declared) break
          parts.push(part)
        }
        if (received !== declared) throw new InvalidInputError(Codes.BAD_REQUEST, `body of ${received} bytes where content-length said ${declared}`)
        sendJson(res, 201, fileView(await node.volumes.putBuffered(decodeSegment(vol), decodePath(path), parts, opts)))
      } finally {
        node.volumes.batcher.release(declared)
      }
      return
    }
    let received = 0
    const body = (async function * (): AsyncGenerator<Uint8Array> {
      for await (const part of req as AsyncIterable<Buffer>) { received += part.byteLength; yield part }
      // A short body (client gone, proxy cut) must not become a short file.
      if (declared !== undefined && received !== declared) {
        throw new InvalidInputError(Codes.BAD_REQUEST, `body ended after ${received} of ${declared} bytes`)
      }
    })()
    const controller = new AbortController()
    req.once('aborted', () => controller.abort())
    const rec = await node.volumes.putFile(decodeSegment(vol), decodePath(path), body, { ...opts, signal: controller.signal })
    sendJson(res, 201, fileView(rec))
  })
  router.add('DELETE', FILE_ROUTE, async (_req, res, [vol, path]) => {
    const rec = await node.volumes.removeFile(decodeSegment(vol), decodePath(path))
    const answer: FileRemoved = { path: rec.path, deleted: true, seq: rec.seq, version: { ...rec.vv } }
    sendJson(res, 200, answer)
  })
}

async function getFile (node: FileAccess, req: IncomingMessage, res: ServerResponse, [vol, path]: string[], withBody: boolean, url: URL): Promise<void> {
  const name = decodeSegment(vol)
  const filePath = decodePath(path)
  const snapshot = url.searchParams.get('snapshot')
  const rec = snapshot !== null ? await node.volumes.statAt(name, snapshot, filePath) : await node.volumes.stat(name, filePath)
  const range = parseRange(req.headers.range, rec.size)
  const headers: Record<string, string | number> = {
    'content-type': 'application/octet-stream',
    'accept-ranges': 'bytes',
    'last-modified': new Date(rec.mtime).toUTCString(),
    etag: `"${rec.seq}-${rec.size}"`,
    'x-replicant-mode': rec.mode.toString(8),
    'x-replicant-mtime': rec.mtime
  }
  if (range !== undefined) {
    headers['content-range'] = `bytes ${range.start}-${range.end}/${rec.size}`
    headers['content-length'] = range.end - range.start + 1
  } else {
    headers['content-length'] = rec.size
  }
  const status = range !== undefined ? 206 : 200
  if (!withBody) { res.writeHead(status, headers); res.end(); return }
  const controller = new AbortController()
  res.once('close', () => controller.abort())
  await sendStream(res, status, headers, node.volumes.readFile(name, rec, range, controller.signal))
}
