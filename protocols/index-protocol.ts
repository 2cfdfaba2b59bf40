import type { Libp2p, PeerId, Stream, Connection } from '@libp2p/interface'
import { Framed, answerError, expect, noteBroken, type Message } from './framing.js'
import type { IndexSource, Authorizer, ReplyShaper, RequestGate } from './sources.js'
import { splitRecords, writeParts, readChunkLists } from './record-parts.js'
import { INDEX_PROTOCOL, INDEX_PROTOCOL_V1_0, INLINE_CHUNK_LIST_BYTES, WIRE_VERSION, MAX_FRAME_BYTES, MAX_SMALL_FRAME_BYTES, INDEX_PAGE_RECORDS, INDEX_PAGE_BYTES, MAX_INBOUND_STREAMS, MAX_OUTBOUND_STREAMS } from './constants.js'
import { asFileRecord } from '../core/codec.js'
import { normalizePath } from '../core/paths.js'
import { ProtocolError, Codes } from '../core/errors.js'
import { logger } from '../core/log.js'
import type { FileRecord } from '../core/records.js'

const log = logger('proto:index')

/**
 * index: "changes of volume V since sequence N" -> one page of file records in change-log
 * order. One request per stream; the client asks for the next page when it has applied
 * this one, so a page is the unit of flow control.
 */
export interface IndexRequest {
  volume: string
  volumeId: string
  since: number
  limit?: number
  /** Ask for the number and bytes of all records since `since` (one extra index scan). */
  count?: boolean
  /** Part of a full scan that started at 0: allowed below the log floor. */
  scan?: boolean
}

export interface IndexPage {
  /** The server's volume seq read before the page was gathered. */
  head: number
  records: FileRecord[]
  /** Seq up to which the client has now seen every change (its next `since`). */
  last: number
  more: boolean
  /** With `count`: live files and their bytes changed since `since`, across all pages. */
  pending?: { files: number, bytes: number }
  /**
   * Whether the server's own index is complete (it is not a wannabe still pulling its first
   * full index): only such a log, pulled to its end, brings a wannabe's index up to date.
   * A server without the field (older) counts as complete.
   */
  complete: boolean
}

/** Serves the change log of `source` to the peers `auth` lets read it; `links` shapes the replies (tests). */
export async function registerIndexHandler (libp2p: Libp2p, source: IndexSource, auth: Authorizer, links?: ReplyShaper, gate?: RequestGate): Promise<void> {
  await libp2p.handle(INDEX_PROTOCOL, async (stream, connection) => { await answerIndex(source, auth, stream, connection, true, links, gate) }, { maxInboundStreams: MAX_INBOUND_STREAMS, maxOutboundStreams: MAX_OUTBOUND_STREAMS })
  await libp2p.handle(INDEX_PROTOCOL_V1_0, async (stream, connection) => { await answerIndex(source, auth, stream, connection, false, links, gate) }, { maxInboundStreams: MAX_INBOUND_STREAMS, maxOutboundStreams: MAX_OUTBOUND_STREAMS })
}

/** One index request; `splitOk` is false for 1.0.0 clients, which cannot take split records. */
async function answerIndex (source: IndexSource, auth: Authorizer, stream: Stream, connection: Connection, splitOk: boolean, links?: ReplyShaper, gate?: RequestGate): Promise<void> {
  const framed = new Framed(stream, MAX_SMALL_FRAME_BYTES)
  let unwatch: (() => void) | undefined
  try {
    await gate?.admit(connection.remotePeer.toString(), INDEX_PROTOCOL)
    const req = expect<Message & { volume: unknown, volumeId: unknown, since: unknown, limit: unknown, count: unknown, scan: unknown }>(await framed.read(), 'index-req')
    const peer = connection.remotePeer.toString()
    const vol = await auth.authorize(req.volume, req.volumeId, peer)
    unwatch = auth.watch?.(vol, peer, err => { framed.abort(err) })
    if (typeof req.since !== 'number' || !Number.isSafeInteger(req.since) || req.since < 0) throw new ProtocolError(Codes.BAD_MESSAGE, 'since must be a non-negative integer')
    // Below the floor, "changes since N" would miss purged tombstones: never a wrong minicopy.
    if (req.scan !== true && req.since > 0 && req.since < (vol.logFloor ?? 0)) {
      throw new ProtocolError(Codes.LOG_COMPACTED, `changes since ${req.since} are compacted away (log complete from ${vol.logFloor ?? 0}): a full copy is needed`)
    }
    // What a member asks from is what it has applied: compaction may purge below the least of these.
    if (req.scan !== true) await source.noteApplied(vol.name, peer, req.since)
    const limit = typeof req.limit === 'number' && req.limit > 0 ? Math.min(req.limit, INDEX_PAGE_RECORDS) : INDEX_PAGE_RECORDS
    // Head first: every record at or below it is already committed, so `last` may jump to it.
    const head = (await source.requireVolume(vol.name)).seq
    const records: FileRecord[] = []
    let bytes = 0
    let more = false
    for await (const rec of source.changesSince(vol.name, req.since, { batch: Math.min(limit, 256) })) {
      if (records.length >= limit || bytes >= INDEX_PAGE_BYTES) { more = true; break }
      records.push(rec)
      bytes += rec.chunks.byteLength + rec.path.length + 128
    }
    const last = more ? records[records.length - 1].seq : Math.max(head, records.at(-1)?.seq ?? req.since)
    let pending: { files: number, bytes: number } | undefined
    if (req.count === true) {
      pending = { files: 0, bytes: 0 }
      for await (const rec of source.changesSince(vol.name, req.since)) {
        if (rec.deleted) continue
        pending.files++
        pending.bytes += rec.size
      }
    }
    // A 1.0.0 client takes whole records, as before 1.1.0: every page that fit a frame then
    // still does; only a record that never fit is refused, with a clear error.
    const wire = splitRecords(records, splitOk ? INLINE_CHUNK_LIST_BYTES : Infinity)
    const tooLong = splitOk ? undefined : records.find(r => r.chunks.byteLength > MAX_FRAME_BYTES - INDEX_PAGE_BYTES - 64 * 1024)
    if (tooLong !== undefined) {
      throw new ProtocolError(Codes.MESSAGE_TOO_LARGE, `${tooLong.path} has a chunk list of ${tooLong.chunks.byteLength} bytes, which ${INDEX_PROTOCOL_V1_0} cannot carry in one frame: upgrade this member`)
    }
    await links?.pass(peer, bytes + 256)
    const complete = source.indexComplete?.(vol) ?? true
    await framed.write({ v: WIRE_VERSION, t: 'index-page', head, records: wire.records, last, more, complete, ...(wire.split.length > 0 ? { split: wire.split } : {}), ...(pending !== undefined ? { pending } : {}) })
    await writeParts(framed, wire.parts)
    await framed.close()
  } catch (err) {
    log('index request from %p failed: %s', connection.remotePeer, (err as Error).message)
    noteBroken(gate, connection.remotePeer.toString(), err)
    await answerError(framed, err)
  } finally {
    unwatch?.()
  }
}

export async function fetchIndexPage (libp2p: Libp2p, peer: PeerId, req: IndexRequest, signal?: AbortSignal): Promise<IndexPage> {
  const stream = await libp2p.dialProtocol(peer, [INDEX_PROTOCOL, INDEX_PROTOCOL_V1_0], { signal })
  const framed = new Framed(stream, MAX_FRAME_BYTES)
  try {
    await framed.write({ v: WIRE_VERSION, t: 'index-req', ...req }, { signal })
    const page = expect<Message & { head: unknown, records: unknown, last: unknown, more: unknown, pending: unknown, split: unknown, complete: unknown }>(await framed.read({ signal }), 'index-page')
    if (!Array.isArray(page.records) || typeof page.head !== 'number' || typeof page.last !== 'number' || typeof page.more !== 'boolean') {
      throw new ProtocolError(Codes.BAD_MESSAGE, 'malformed index page')
    }
    await readChunkLists(framed, page.records, page.split, signal)
    const records = page.records.map(asFileRecord)
    let prev = req.since
    for (const r of records) {
      if (r.seq <= prev) throw new ProtocolError(Codes.BAD_MESSAGE, 'index page records out of order')
      if (normalizePath(r.path) !== r.path) throw new ProtocolError(Codes.BAD_MESSAGE, `index record has a non-canonical path ${JSON.stringify(r.path)}`)
      prev = r.seq
    }
    if (page.last < prev) throw new ProtocolError(Codes.BAD_MESSAGE, 'index page ends before its last record')
    await framed.close()
    const p = page.pending as { files?: unknown, bytes?: unknown } | undefined
    const pending = typeof p?.files === 'number' && typeof p?.bytes === 'number' ? { files: p.files, bytes: p.bytes } : undefined
    return { head: page.head, records, last: page.last, more: page.more, complete: page.complete !== false, ...(pending !== undefined ? { pending } : {}) }
  } catch (err) {
    framed.abort(err as Error)
    throw err
  }
}

