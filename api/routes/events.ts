/**
 * GET /v1/events: server-sent events (text/event-stream) from core/events.ts, so that clients
 * need not poll. Each event: `id: N`, `event: KIND` (hello, state, progress, conflict, peer,
 * change, move), `data: JSON`. A reconnecting client sends Last-Event-ID (EventSource does) and gets
 * the kept events after it; `?since=0` replays every kept one; `?kinds=a,b` filters. A client
 * that does not read falls behind by at most MAX_BUFFERED bytes, then it is dropped.
 */
import type { Router } from '../router.js'
import type { EventsSource } from '../node-api.js'
import type { NodeEvent } from '../../core/events.js'
import { ReplicantError, Codes } from '../../core/errors.js'

export const MAX_BUFFERED = 1024 * 1024
export const HEARTBEAT_MS = 15_000

export function eventRoutes (router: Router, node: EventsSource): void {
  router.add('GET', /^\/v1\/events$/, (req, res, _params, url) => {
    const lastHeader = req.headers['last-event-id']
    const sinceText = typeof lastHeader === 'string' ? lastHeader : url.searchParams.get('since')
    const since = sinceText !== null && /^\d{1,15}$/.test(sinceText) ? Number(sinceText) : undefined
    const kinds = url.searchParams.get('kinds')?.split(',').filter(k => k !== '')
    const send = (e: NodeEvent): void => {
      if (kinds !== undefined && !kinds.includes(e.kind)) return
      if (res.writableLength > MAX_BUFFERED) { res.destroy(); return }
      res.write(`id: ${e.id}\nevent: ${e.kind}\ndata: ${JSON.stringify({ ...e.data, at: e.at })}\n\n`)
    }
    const unsubscribe = node.events.subscribe(send)
    if (unsubscribe === undefined) throw new ReplicantError(Codes.RATE_LIMITED, 'too many event streams open on this node: retry later', { retryAfter: 5 })
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' })
    const replay = since !== undefined ? node.events.since(since) : []
    const lastId = node.events.since().at(-1)?.id ?? 0
    res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ peerId: node.peerId, lastId, at: Date.now() })}\n\n`)
    for (const e of replay) send(e)
    const heartbeat = setInterval(() => { res.write(': ping\n\n') }, HEARTBEAT_MS)
    heartbeat.unref()
    res.on('close', () => { clearInterval(heartbeat); unsubscribe() })
  })
}
