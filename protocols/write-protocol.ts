import type { Libp2p, PeerId } from '@libp2p/interface'
import { Framed, expect, request, answerError, noteBroken, type Message } from './framing.js'
import { WRITE_PROTOCOL, WIRE_VERSION, MAX_FRAME_BYTES, HEADER_FRAME_BYTES, MAX_INBOUND_STREAMS, MAX_OUTBOUND_STREAMS } from './constants.js'
import { ProtocolError, Codes } from '../core/errors.js'
import { asFileRecord, encode } from '../core/codec.js'
import { normalizePath } from '../core/paths.js'
import { logger } from '../core/log.js'
import { splitRecords, readChunkLists } from './record-parts.js'
import type { NewFileRecord } from '../core/records.js'
import type { Authorizer, RequestGate } from './sources.js'

const log = logger('proto:write')

/**
 * write: the two phases of an `all`-mode write. `prepare` carries the record (the member
 * fetches the chunks it lacks from the coordinator with the chunk protocol, stores record and
 * chunks durably but invisibly, and answers `prepared`); `commit` makes it visible; `abort`
 * drops it; `status` asks a coordinator what it decided. One request and reply per stream.
 *
 * Every request starts with a header frame of at most HEADER_FRAME_BYTES: `{v, t, volume,
 * volumeId, txId}`. The sender is authorized on it; only then does a prepare's body frame
 * (`{v, t: 'prepare-body', record, split?}`, up to MAX_FRAME_BYTES, and its split parts) get
 * read. A non-member's body is never taken from the stream.
 */
export interface WriteHandlers {
  prepare: (peer: string, volume: string, volumeId: string, txId: string, record: NewFileRecord, signal: AbortSignal) => Promise<void>
  commit: (peer: string, volume: string, volumeId: string, txId: string) => Promise<void>
  abort: (peer: string, volume: string, volumeId: string, txId: string) => Promise<void>
  status: (peer: string, volume: string, volumeId: string, txId: string) => Promise<'commit' | 'abort' | 'unknown'>
}

/** Bytes the write handler has taken from its streams (all peers): what a refused body did not cost. */
export interface WireMeter { bytesRead: number }

const TX_ID = /^[0-9a-f]{32}$/
const TYPES = new Set(['prepare', 'commit', 'abort', 'status'])

export async function registerWriteHandler (libp2p: Libp2p, handlers: WriteHandlers, auth: Authorizer, prepareTimeoutMs: number, meter?: WireMeter, gate?: RequestGate): Promise<void> {
  await libp2p.handle(WRITE_PROTOCOL, async (stream, connection) => {
    const framed = new Framed(stream, MAX_FRAME_BYTES, HEADER_FRAME_BYTES)
    const peer = connection.remotePeer.toString()
    let authorized = false
    try {
      await gate?.admit(peer, WRITE_PROTOCOL)
      const msg = await framed.read() as Message & { volume: unknown, volumeId: unknown, txId: unknown }
      if (typeof msg.volume !== 'string' || typeof msg.volumeId !== 'string' || typeof msg.txId !== 'string' || !TX_ID.test(msg.txId)) {
        throw new ProtocolError(Codes.BAD_MESSAGE, 'write request needs volume, volumeId and a 128-bit hex txId')
      }
      if (!TYPES.has(msg.t)) throw new ProtocolError(Codes.BAD_MESSAGE, `unknown write request '${msg.t}'`)
      await auth.authorize(msg.volume, msg.volumeId, peer)
      authorized = true
      if (msg.t === 'prepare') {
        framed.allowLargeFrames()
        const body = expect<Message & { record: unknown, split: unknown }>(await framed.read(), 'prepare-body')
        await readChunkLists(framed, [body.record], body.split)
        const record = asFileRecord({ ...(body.record as object), seq: 0 })
        if (normalizePath(record.path) !== record.path) throw new ProtocolError(Codes.BAD_MESSAGE, 'non-canonical path')
        // eslint-disable-next-line @typescript-eslint/no-unused-vars -- seq is dropped: the member's store assigns its own
        const { seq: _seq, ...rec } = record
        await handlers.prepare(peer, msg.volume, msg.volumeId, msg.txId, rec, AbortSignal.timeout(prepareTimeoutMs))
        await framed.write({ v: WIRE_VERSION, t: 'prepared' })
      } else if (msg.t === 'commit') {
        await handlers.commit(peer, msg.volume, msg.volumeId, msg.txId)
        await framed.write({ v: WIRE_VERSION, t: 'ok' })
      } else if (msg.t === 'abort') {
        await handlers.abort(peer, msg.volume, msg.volumeId, msg.txId)
        await framed.write({ v: WIRE_VERSION, t: 'ok' })
      } else {
        await framed.write({ v: WIRE_VERSION, t: 'status', decision: await handlers.status(peer, msg.volume, msg.volumeId, msg.txId) })
      }
      await framed.close()
    } catch (err) {
      log('write request from %s failed: %s', peer, (err as Error).message)
      noteBroken(gate, peer, err)
      // Whatever a refused sender still sends is dropped, not buffered.
      if (!authorized) await stream.closeRead().catch(() => {})
      await answerError(framed, err)
    } finally {
      if (meter !== undefined) meter.bytesRead += framed.bytesRead
    }
  }, { maxInboundStreams: MAX_INBOUND_STREAMS, maxOutboundStreams: MAX_OUTBOUND_STREAMS })
}

async function call (libp2p: Libp2p, peer: PeerId, msg: Message, signal: AbortSignal, trailer?: Uint8Array[]): Promise<Message> {
  return await request(libp2p, peer, WRITE_PROTOCOL, msg, { maxFrame: MAX_FRAME_BYTES, signal, timeoutMs: 24 * 3600_000, ...(trailer !== undefined ? { trailer } : {}) })
}

export interface TxRef { volume: string, volumeId: string, txId: string }

export async function sendPrepare (libp2p: Libp2p, peer: PeerId, tx: TxRef, record: NewFileRecord, signal: AbortSignal): Promise<void> {
  const wire = splitRecords([record], MAX_FRAME_BYTES - 64 * 1024)
  const body = encode({ v: WIRE_VERSION, t: 'prepare-body', record: wire.records[0], ...(wire.split.length > 0 ? { split: wire.split } : {}) })
  expect(await call(libp2p, peer, { v: WIRE_VERSION, t: 'prepare', ...tx }, signal, [body, ...wire.parts]), 'prepared')
}

export async function sendCommit (libp2p: Libp2p, peer: PeerId, tx: TxRef, signal: AbortSignal): Promise<void> {
  expect(await call(libp2p, peer, { v: WIRE_VERSION, t: 'commit', ...tx }, signal), 'ok')
}

export async function sendAbort (libp2p: Libp2p, peer: PeerId, tx: TxRef, signal: AbortSignal): Promise<void> {
  expect(await call(libp2p, peer, { v: WIRE_VERSION, t: 'abort', ...tx }, signal), 'ok')
}

export async function askStatus (libp2p: Libp2p, peer: PeerId, tx: TxRef, signal: AbortSignal): Promise<'commit' | 'abort' | 'unknown'> {
  const reply = expect<Message & { decision: unknown }>(await call(libp2p, peer, { v: WIRE_VERSION, t: 'status', ...tx }, signal), 'status')
  return reply.decision === 'commit' || reply.decision === 'abort' ? reply.decision : 'unknown'
}
