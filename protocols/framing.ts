import { pipe } from 'it-pipe'
import * as lp from 'it-length-prefixed'
import { Uint8ArrayList } from 'uint8arraylist'
import type { Stream, Libp2p, PeerId } from '@libp2p/interface'
import { encode, decode } from '../core/codec.js'
import { ProtocolError, ReplicantError, Codes, toErrorCode } from '../core/errors.js'
import { WIRE_VERSION, REQUEST_TIMEOUT_MS, MAX_MESSAGE_ITEMS } from './constants.js'

/** Every message on the wire: a version and a type tag, then fields of that type. */
export interface Message { v: number, t: string, [key: string]: unknown }

/**
 * A frame as it arrived: the transport's buffers (decrypted noise messages of up to 65,519
 * bytes), not joined. it-length-prefixed yields its Uint8ArrayList; this is the part of it used.
 */
export interface FramePieces extends Iterable<Uint8Array> {
  readonly byteLength: number
  get: (index: number) => number
  /** The bytes in one buffer: a view if they lie in one piece, else a copy. */
  subarray: (begin?: number, end?: number) => Uint8Array
  /** Views of the pieces that hold the range (no copy). */
  sublist: (begin?: number, end?: number) => FramePieces
}

/** An error answer any protocol may send instead of its normal reply. */
export interface ErrorMessage extends Message { t: 'error', code: string, message: string }

export function errorMessage (err: unknown): ErrorMessage {
  const e = err instanceof ReplicantError ? err : new ProtocolError(Codes.INTERNAL, (err as Error)?.message ?? String(err))
  return { v: WIRE_VERSION, t: 'error', code: e.code, message: e.message }
}

/**
 * Length-prefixed CBOR messages over a libp2p 3 stream, with a size cap on every inbound
 * frame, a timeout on every read, and writes that wait for 'drain' when the stream's
 * buffer is full (stream.onDrain() is unreliable in @libp2p/utils 7.4.1).
 */
export class Framed {
  private readonly frames: AsyncIterator<FramePieces | Uint8Array>
  /** Bytes taken from the stream so far (frames, length prefixes, and what arrived with them). */
  bytesRead = 0
  private cap: number

  /**
   * @param maxFrame the largest frame this stream may ever carry
   * @param headerCap the cap until allowLargeFrames() (a request's header is read and its
   *   sender authorized before any frame up to maxFrame is taken from the stream)
   */
  constructor (readonly stream: Stream, readonly maxFrame: number, headerCap = maxFrame) {
    this.cap = Math.min(headerCap, maxFrame)
    const count = async function * (this: Framed, source: AsyncIterable<{ byteLength: number }>): AsyncGenerator<{ byteLength: number }> {
      for await (const piece of source) { this.bytesRead += piece.byteLength; yield piece }
    }.bind(this)
    // The length prefix is checked against the current cap as soon as it is read, before any
    // byte of the frame is buffered.
    const onLength = (n: number): void => {
      if (n > this.cap) throw new ProtocolError(Codes.MESSAGE_TOO_LARGE, `frame of ${n} bytes is larger than ${this.cap} bytes`)
    }
    this.frames = pipe(stream, count, (source) => lp.decode(source as AsyncIterable<Uint8Array>, { maxDataLength: maxFrame, onLength }))[Symbol.asyncIterator]()
  }

  /** Lifts the header cap: frames up to maxFrame may follow (the sender was authorized). */
  allowLargeFrames (): void {
    this.cap = this.maxFrame
  }

  /** Next message, or undefined at a clean end of stream. */
  async readOrEnd (options: { signal?: AbortSignal, timeoutMs?: number } = {}): Promise<Message | undefined> {
    const bytes = await this.readFrameOrEnd(options)
    if (bytes === undefined) return undefined
    try {
      return asMessage(decode(bytes, { maxItems: MAX_MESSAGE_ITEMS }))
    } catch (err) {
      const e = toProtocolError(err, this.maxFrame)
      this.stream.abort(e)
      throw e
    }
  }

  /**
   * The next frame's bytes, undecoded (protocols with binary frames decode them), or undefined
   * at a clean end of stream. A frame that arrived in one piece is returned without a copy.
   */
  async readFrameOrEnd (options: { signal?: AbortSignal, timeoutMs?: number } = {}): Promise<Uint8Array | undefined> {
    const frame = await this.readPiecesOrEnd(options)
    return frame === undefined || frame instanceof Uint8Array ? frame : frame.subarray()
  }

  /**
   * The next frame in the pieces it arrived in (no join: a 1 MiB chunks frame is ~17 pieces),
   * or undefined at a clean end of stream.
   */
  async readPiecesOrEnd (options: { signal?: AbortSignal, timeoutMs?: number } = {}): Promise<Uint8Array | FramePieces | undefined> {
    const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    const guard = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new ProtocolError(Codes.TIMEOUT, `no message from peer within ${timeoutMs} ms`)), timeoutMs)
      onAbort = () => reject(new ReplicantError(Codes.ABORTED, 'aborted'))
      options.signal?.addEventListener('abort', onAbort, { once: true })
      if (options.signal?.aborted === true) onAbort()
    })
    try {
      const next = await Promise.race([this.frames.next(), guard])
      if (next.done === true) return undefined
      return next.value
    } catch (err) {
      const e = toProtocolError(err, this.maxFrame)
      this.stream.abort(e)
      throw e
    } finally {
      clearTimeout(timer)
      if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort)
    }
  }

  async read (options: { signal?: AbortSignal, timeoutMs?: number } = {}): Promise<Message> {
    return this.decodeMessage(await this.readFrameOrEnd(options))
  }

  /** What read() makes of a frame from readFrameOrEnd() or readPiecesOrEnd(): a message, or a typed error (end of stream, error reply, bad CBOR). */
  decodeMessage (frame: Uint8Array | FramePieces | undefined): Message {
    let msg: Message | undefined
    try {
      const bytes = frame === undefined || frame instanceof Uint8Array ? frame : frame.subarray()
      msg = bytes === undefined ? undefined : asMessage(decode(bytes, { maxItems: MAX_MESSAGE_ITEMS }))
    } catch (err) {
      const e = toProtocolError(err, this.maxFrame)
      this.stream.abort(e)
      throw e
    }
    if (msg === undefined) {
      const e = new ProtocolError(Codes.TRUNCATED, 'stream ended before the expected message')
      this.stream.abort(e)
      throw e
    }
    if (msg.t === 'error') {
      const em = msg as ErrorMessage
      throw new ProtocolError(toErrorCode(em.code), `peer: ${String(em.message)}`)
    }
    return msg
  }

  async write (msg: Message, options: { signal?: AbortSignal } = {}): Promise<void> {
    const frame = lp.encode.single(encode(msg))
    if (this.stream.send(frame)) return
    await waitForDrain(this.stream, options.signal)
  }

  /**
   * One frame made of `parts`, handed to the stream in one send() as a list of the parts (no
   * copy), waiting for 'drain' if the stream's buffer is full. Why one send: yamux makes every
   * send() its own data frame (it does not coalesce), and the receiver answers every data frame
   * with a window update; a 1 MiB chunks frame sent as 16 x 64 KiB parts cost 17 muxer frames,
   * 17 window updates back (each encrypted and written on its own) and a 29-byte noise message
   * after every 64 KiB one. Why no join: a copy of every frame adds a 1 MiB buffer per frame,
   * and external (ArrayBuffer) allocation is what drives V8's full GCs here.
   */
  async writeFrame (parts: Uint8Array[], options: { signal?: AbortSignal } = {}): Promise<void> {
    const length = parts.reduce((n, p) => n + p.byteLength, 0)
    // uint8arraylist 2.x here, 3.x in @libp2p/utils: the types differ, the runtime check
    // (Symbol.for('@achingbrain/uint8arraylist')) is the same, so the list is taken as it is.
    const ok = this.stream.send(new Uint8ArrayList(varint(length), ...parts) as unknown as Parameters<Stream['send']>[0])
    if (ok) return
    await waitForDrain(this.stream, options.signal)
  }

  async close (): Promise<void> {
    await this.stream.close().catch(() => {})
  }

  abort (err: Error): void {
    this.stream.abort(err)
  }
}

/** Unsigned LEB128, the length prefix it-length-prefixed reads and writes. */
export function varint (n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128) }
  out.push(n)
  return Uint8Array.from(out)
}

function waitForDrain (stream: Stream, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
    }
    const onDrain = (): void => { cleanup(); resolve() }
    const onClose = (): void => { cleanup(); reject(new ProtocolError(Codes.STREAM_CLOSED, 'stream closed while writing')) }
    const onAbort = (): void => { cleanup(); reject(new ReplicantError(Codes.ABORTED, 'aborted')) }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal?.addEventListener('abort', onAbort)
  })
}

function asMessage (x: unknown): Message {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) throw new ProtocolError(Codes.BAD_MESSAGE, 'message is not a map')
  const m = x as Record<string, unknown>
  if (typeof m.v !== 'number' || typeof m.t !== 'string') throw new ProtocolError(Codes.BAD_MESSAGE, 'message lacks version or type')
  if (m.v > WIRE_VERSION) throw new ProtocolError(Codes.UNSUPPORTED_VERSION, `message version ${m.v} is newer than ${WIRE_VERSION}`)
  return m as Message
}

function toProtocolError (err: unknown, maxFrame: number): ReplicantError {
  if (err instanceof ReplicantError) return err
  const code = (err as { code?: string, name?: string })?.code ?? (err as { name?: string })?.name
  if (code === 'ERR_MSG_DATA_TOO_LONG' || code === 'InvalidDataLengthError') {
    return new ProtocolError(Codes.MESSAGE_TOO_LARGE, `frame larger than ${maxFrame} bytes`)
  }
  return new ProtocolError(Codes.BAD_MESSAGE, `stream failed: ${(err as Error)?.message ?? String(err)}`)
}

/** Checks a message's type, throwing a typed error on anything else. */
export function expect<T extends Message> (msg: Message, t: string): T {
  if (msg.t !== t) throw new ProtocolError(Codes.BAD_MESSAGE, `expected a '${t}' message, got '${msg.t}'`)
  return msg as T
}

/** One request and its reply on a fresh stream of `protocol`; the stream is aborted on any error. */
export async function request (libp2p: Libp2p, peer: PeerId, protocol: string, msg: Message, opts: { maxFrame: number, signal?: AbortSignal, timeoutMs?: number, trailer?: Uint8Array[] }): Promise<Message> {
  const stream = await libp2p.dialProtocol(peer, protocol, { signal: opts.signal })
  const framed = new Framed(stream, opts.maxFrame)
  try {
    await framed.write(msg, { signal: opts.signal })
    // Raw frames that belong to the message (split chunk lists, record-parts.ts).
    for (const part of opts.trailer ?? []) await framed.writeFrame([part], { signal: opts.signal })
    const reply = await framed.read({ signal: opts.signal, ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) })
    await framed.close()
    return reply
  } catch (err) {
    framed.abort(err as Error)
    throw err
  }
}

/** A request handler's failure: sent back to the peer as an error message, then the stream closes. */
export async function answerError (framed: Framed, err: unknown): Promise<void> {
  // A reply lost on a simulated lossy link is a reset stream, not an error message.
  if ((err as { code?: string })?.code === 'LINK_DROPPED') { framed.abort(err as Error); return }
  await framed.write(errorMessage(err)).catch(() => {})
  await framed.close()
}

/** Codes that mean a peer broke the protocol (not a refusal or a failure of ours). */
const BROKEN = new Set<string>([Codes.BAD_MESSAGE, Codes.MESSAGE_TOO_LARGE, Codes.UNSUPPORTED_VERSION])

/** Tells the gate about a request that broke the protocol (it counts toward a ban). */
export function noteBroken (gate: { misbehaved: (peer: string, reason: string) => void } | undefined, peer: string, err: unknown): void {
  const code = (err as { code?: string })?.code
  // A stream the peer reset or cut (a cancelled read, a lost link) is no misbehaviour.
  if ((err as Error)?.message?.startsWith('stream failed') === true) return
  if (gate !== undefined && code !== undefined && BROKEN.has(code)) gate.misbehaved(peer, code)
}
