/**
 * Sends one fuzz case to the target: over the wire (a real libp2p stream from the stranger or
 * the member) or in memory (a connected stream pair, the other end handed to the target's
 * registered handler). Either way it watches the handler's side end: a stream that is still
 * open long after the sender closed is a hung handler.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { streamPair } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import type { FuzzTarget } from './fuzz-target.js'
import type { FuzzCase } from './fuzz-mutate.js'

/** Reply bytes read before the sender stops listening (a full chunks answer is ~4 MiB). */
const REPLY_CAP = 16 * 1024 * 1024

export type SendMode = 'wire' | 'memory'

export interface Sent {
  replyBytes: number
  /** For an abandoned stream: settles when the handler's side has ended (its read timeout). */
  abandoned?: Promise<void>
  /** Set when the handler's side did not end within hungMs of the sender closing. */
  hung?: string
  /** Set when the handler threw instead of answering (in memory only: libp2p swallows it on the wire). */
  threw?: string
}

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

async function within<T> (p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<'timeout'>(resolve => { timer = setTimeout(() => resolve('timeout'), ms) })
  try { return await Promise.race([p, t]) } finally { clearTimeout(timer) }
}

function pieces (c: FuzzCase): Uint8Array[] {
  const out: Uint8Array[] = []
  let from = 0
  for (const cut of c.cuts) { if (cut > from) out.push(c.bytes.subarray(from, cut)); from = Math.max(from, cut) }
  out.push(c.bytes.subarray(from))
  return out.filter(p => p.byteLength > 0)
}

/** Pieces go in parts of at most this, each waiting for 'drain' when the stream's buffer is full. */
const SEND_MAX = 32 * 1024

/** Sends `piece` in parts, waiting for 'drain' when the stream's buffer is full; false if it never drained. */
async function sendAll (stream: Stream, piece: Uint8Array, hungMs: number): Promise<boolean> {
  for (let o = 0; o < piece.byteLength; o += SEND_MAX) {
    if (stream.status !== 'open' || stream.writeStatus !== 'writable') return true
    if (stream.send(piece.subarray(o, o + SEND_MAX))) continue
    if (await within(stream.onDrain().then(() => 'ok', () => 'closed'), hungMs) === 'timeout') return false
  }
  return true
}

/** Reads whatever the handler answers, until its side ends (resolves) or resets (resolves too). */
function readReply (stream: Stream, counter: { bytes: number }): Promise<void> {
  return (async () => {
    try {
      for await (const chunk of stream) {
        counter.bytes += chunk.byteLength
        if (counter.bytes > REPLY_CAP) { stream.abort(new Error('fuzz: reply cap')); return }
      }
    } catch { /* a reset is an end */ }
  })()
}

/** Sends `c` on `stream` as its delivery says; returns how the handler's side ended. */
export async function drive (stream: Stream, c: FuzzCase, hungMs: number): Promise<Sent> {
  const counter = { bytes: 0 }
  const reply = readReply(stream, counter)
  const list = pieces(c)
  for (let i = 0; i < list.length; i++) {
    if (stream.status !== 'open' || stream.writeStatus !== 'writable') break
    try {
      if (!await sendAll(stream, list[i], hungMs)) {
        stream.abort(new Error('fuzz: no drain'))
        return { replyBytes: counter.bytes, hung: `the handler stopped reading and did not end within ${hungMs} ms` }
      }
    } catch { break }
    const d = c.delays[i] ?? 0
    if (d > 0) await sleep(d)
  }
  if (c.end === 'reset') { stream.abort(new Error('fuzz: reset')); await reply; return { replyBytes: counter.bytes } }
  if (c.end === 'abandon') return { replyBytes: counter.bytes, abandoned: reply }
  await stream.close().catch(() => {})
  if (await within(reply, hungMs) === 'timeout') {
    stream.abort(new Error('fuzz: hung'))
    return { replyBytes: counter.bytes, hung: `the handler did not end its side within ${hungMs} ms of the sender closing` }
  }
  return { replyBytes: counter.bytes }
}

/** One case over a real libp2p stream from the case's identity to the target. */
export async function sendWire (target: FuzzTarget, c: FuzzCase, hungMs: number): Promise<Sent> {
  const stream = await target.peerOf(c.identity).dialProtocol(target.targetId, c.protocol, { signal: AbortSignal.timeout(hungMs) })
  return await drive(stream, c, hungMs)
}

const MEMORY_ADDR = multiaddr('/ip4/127.0.0.1/tcp/1')

/** One case handed straight to the target's registered handler on an in-memory stream pair. */
export async function sendMemory (target: FuzzTarget, c: FuzzCase, hungMs: number): Promise<Sent> {
  // A fixed address: the default one counts every pair into a TCP port and throws after 65,535.
  const [out, inbound] = await streamPair({ delay: 0, protocol: c.protocol, outboundConnection: { remoteAddr: MEMORY_ADDR }, inboundConnection: { remoteAddr: MEMORY_ADDR } })
  // The handlers read only remotePeer off the connection.
  const connection = { remotePeer: target.peerOf(c.identity).peerId } as unknown as Connection
  let threw: string | undefined
  const handled = Promise.resolve()
    .then(async () => { await target.handlerOf(c.protocol)(inbound, connection) })
    .catch((err: Error) => { threw = `${err.name}: ${err.message}` })
  const sent = await drive(out, c, hungMs)
  const settled = handled.then(async () => { await sent.abandoned })
  if (sent.abandoned !== undefined) return { ...sent, abandoned: settled }
  if (sent.hung === undefined && await within(handled, hungMs) === 'timeout') {
    inbound.abort(new Error('fuzz: hung'))
    return { ...sent, hung: `the handler's promise did not settle within ${hungMs} ms of the sender closing` }
  }
  return { ...sent, ...(threw !== undefined ? { threw } : {}) }
}

export async function send (mode: SendMode, target: FuzzTarget, c: FuzzCase, hungMs: number): Promise<Sent> {
  return mode === 'wire' ? await sendWire(target, c, hungMs) : await sendMemory(target, c, hungMs)
}
