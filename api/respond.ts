/** How answers go out: JSON bodies, streamed JSON lists and streamed bytes. */
import type { ServerResponse, OutgoingHttpHeaders } from 'node:http'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'

export function sendJson (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** Streams an async iterable of JSON values as `{"<key>":[...]}`, respecting backpressure. */
export async function sendJsonList (res: ServerResponse, key: string, items: AsyncIterable<unknown>): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/json' })
  async function * body (): AsyncGenerator<string> {
    yield `{${JSON.stringify(key)}:[`
    let first = true
    for await (const item of items) {
      yield (first ? '' : ',') + JSON.stringify(item)
      first = false
    }
    yield ']}'
  }
  await pipeline(Readable.from(body()), res)
}

/**
 * Streams `body` after `status` and `headers`. The first piece is read before the headers go
 * out, so an error there (a chunk no member can supply) is still a JSON error, not a short 200.
 */
export async function sendStream (res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: AsyncGenerator<Uint8Array>): Promise<void> {
  const first = await body.next()
  res.writeHead(status, headers)
  async function * rest (): AsyncGenerator<Uint8Array> {
    if (first.done !== true) yield first.value
    yield * body
  }
  // One piece at a time ahead of the socket (objectMode's default is 16 pieces, each up to a
  // 2 MiB read batch): the reader's own read-ahead is the buffer.
  await pipeline(Readable.from(rest(), { highWaterMark: 1 }), res)
}
