import { randomBytes } from 'node:crypto'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { Framed, answerError, expect, noteBroken, type FramePieces, type Message } from './framing.js'
import type { ChunkSource, Authorizer, ReplyShaper, RequestGate } from './sources.js'
import { CHUNK_PROTOCOL, CHUNK_PROTOCOL_V1_0, WIRE_VERSION, MAX_FRAME_BYTES, MAX_SMALL_FRAME_BYTES, CHUNK_WANT_MAX, CHUNK_FRAME_BYTES, MAX_INBOUND_STREAMS, MAX_OUTBOUND_STREAMS, REQUEST_TIMEOUT_MS } from './constants.js'
import { ProtocolError, Codes } from '../core/errors.js'
import { encode, decode } from '../core/codec.js'
import { HASH_BYTES } from '../core/records.js'
import { logger } from '../core/log.js'
import { sha256, hashHex, byteLengthOf, type ChunkBytes } from '../core/hash.js'
import { ServeLanes } from './serve-lanes.js'

const log = logger('proto:chunk')


/**
 * chunk: a want-list of at most CHUNK_WANT_MAX hashes -> frames of chunk bytes (about
 * CHUNK_FRAME_BYTES each), then 'end'. One want-list per stream: the number of requests a
 * client keeps open is its credit, which bounds what either side buffers.
 */
export interface WantRequest {
  volume: string
  volumeId: string
  hashes: Uint8Array[]
  /** A reader waits on it (a lazy read): sent as `p: 1`, served ahead of bulk frames (serve-lanes.ts). */
  reader?: boolean
}

/** A chunk received: its bytes in the pieces they arrived in (core/hash.ts ChunkBytes). */
export interface ChunkItem { hash: Uint8Array, bytes?: ChunkBytes }

/** Serves the chunks of `source` to the peers `auth` lets read the volume that references them. */
export async function registerChunkHandler (libp2p: Libp2p, source: ChunkSource, auth: Authorizer, onServed?: (peer: string, bytes: number, volume: string, chunks: number, reader: boolean) => void, faults?: ServeFaults, gate?: RequestGate): Promise<void> {
  // Shared by both versions: the lanes are per peer, whatever protocol its streams speak.
  const lanes = new ServeLanes(REQUEST_TIMEOUT_MS)
  await serveChunks(libp2p, CHUNK_PROTOCOL, true, source, auth, lanes, onServed, faults, gate)
  await serveChunks(libp2p, CHUNK_PROTOCOL_V1_0, false, source, auth, lanes, onServed, faults, gate)
}

/**
 * A binary chunks frame (chunk/1.1.0): byte 0 is BINARY_CHUNKS (0x00, which no CBOR map starts
 * with, so 'end' and 'error' messages stay plain CBOR on the same stream), then the header
 * length (u32 big-endian), the CBOR header `{v, t: 'chunks', items: [{h, n?}]}` (n: the byte
 * length of a chunk that follows; no n: not held), then the bytes of every held chunk, in order.
 */
const BINARY_CHUNKS = 0x00

export function encodeChunksFrame (items: Array<{ h: Uint8Array, d?: Uint8Array }>): Uint8Array[] {
  const header = encode({ v: WIRE_VERSION, t: 'chunks', items: items.map(i => i.d === undefined ? { h: i.h } : { h: i.h, n: i.d.byteLength }) })
  const head = new Uint8Array(5 + header.byteLength)
  head[0] = BINARY_CHUNKS
  new DataView(head.buffer).setUint32(1, header.byteLength)
  head.set(header, 5)
  return [head, ...items.flatMap(i => i.d === undefined ? [] : [i.d])]
}

/**
 * Items of a binary chunks frame; the bytes are views into `frame` (no copy): of one buffer, or
 * for a frame in pieces, the views of the pieces each chunk lies in.
 */
export function decodeChunksFrame (frame: Uint8Array | FramePieces): Array<{ h?: unknown, d?: ChunkBytes }> {
  if (frame.byteLength < 5) throw new ProtocolError(Codes.BAD_MESSAGE, 'chunks frame too short')
  const head = frame.subarray(0, 5)
  const headerLength = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(1)
  if (5 + headerLength > frame.byteLength) throw new ProtocolError(Codes.BAD_MESSAGE, 'chunks frame header runs past the frame')
  const header = decode(frame.subarray(5, 5 + headerLength)) as { v?: unknown, t?: unknown, items?: unknown }
  if (header === null || typeof header !== 'object' || typeof header.v !== 'number' || header.t !== 'chunks') throw new ProtocolError(Codes.BAD_MESSAGE, 'bad chunks frame header')
  if (header.v > WIRE_VERSION) throw new ProtocolError(Codes.UNSUPPORTED_VERSION, `message version ${header.v} is newer than ${WIRE_VERSION}`)
  if (!Array.isArray(header.items)) throw new ProtocolError(Codes.BAD_MESSAGE, 'chunks frame without items')
  let off = 5 + headerLength
  const out = (header.items as Array<{ h?: unknown, n?: unknown }>).map(item => {
    if (item === null || typeof item !== 'object') throw new ProtocolError(Codes.BAD_MESSAGE, 'bad chunks frame item')
    if (item.n === undefined) return { h: item.h }
    if (typeof item.n !== 'number' || !Number.isSafeInteger(item.n) || item.n < 0 || off + item.n > frame.byteLength) {
      throw new ProtocolError(Codes.BAD_MESSAGE, 'chunk length runs past the frame')
    }
    const d = frame instanceof Uint8Array ? frame.subarray(off, off + item.n) : [...frame.sublist(off, off + item.n)]
    off += item.n
    return { h: item.h, d }
  })
  if (off !== frame.byteLength) throw new ProtocolError(Codes.BAD_MESSAGE, 'trailing bytes after the chunks of a frame')
  return out
}

/** Fault switches of the serving side (tests, topologies, chaos runs). */
export interface ServeFaults { serveCorruptChunks?: boolean, links?: ReplyShaper }

async function serveChunks (libp2p: Libp2p, protocol: string, binary: boolean, source: ChunkSource, auth: Authorizer, lanes: ServeLanes, onServed?: (peer: string, bytes: number, volume: string, chunks: number, reader: boolean) => void, faults?: ServeFaults, gate?: RequestGate): Promise<void> {
  await libp2p.handle(protocol, async (stream, connection) => {
    const framed = new Framed(stream, MAX_SMALL_FRAME_BYTES)
    const peer = connection.remotePeer.toString()
    let unwatch: (() => void) | undefined
    // Reply bytes reserved for this peer and not handed to the stream yet (given back on any exit).
    const held: Array<() => void> = []
    let finished = false
    let pending: Promise<unknown> | undefined
    let endReader: (() => void) | undefined
    try {
      await gate?.admit(peer, protocol)
      const req = expect<Message & { volume: unknown, volumeId: unknown, hashes: unknown, p?: unknown }>(await framed.read(), 'want')
      const vol = await auth.authorize(req.volume, req.volumeId, peer)
      unwatch = auth.watch?.(vol, peer, err => { framed.abort(err) })
      if (!Array.isArray(req.hashes) || req.hashes.length > CHUNK_WANT_MAX ||
          !req.hashes.every(h => h instanceof Uint8Array && h.byteLength === HASH_BYTES)) {
        throw new ProtocolError(Codes.BAD_MESSAGE, `want-list must hold 1-${CHUNK_WANT_MAX} sha256 hashes`)
      }
      // p (optional, chunk/1.1.0 and 1.0.0 alike; older peers omit it): 1 = a reader waits on it.
      if (req.p !== undefined && req.p !== 0 && req.p !== 1) throw new ProtocolError(Codes.BAD_MESSAGE, 'want-list priority p must be 0 or 1')
      if (req.p === 1) endReader = lanes.reader(peer)
      // Chunks are shared across volumes in the store: serve only those this volume references.
      const hashes = req.hashes as Uint8Array[]
      const inVolume = await source.referencedIn(vol.name, hashes)
      // Chunks of an all-mode write being prepared are served to the members preparing it.
      if (inVolume.some(x => !x)) {
        const prepared = await source.preparedChunks(vol.name)
        hashes.forEach((h, i) => { if (!inVolume[i] && prepared.has(hashHex(h))) inVolume[i] = true })
      }
      // Read in groups of about one frame, the next group while the current one is sent.
      const group = Math.max(1, Math.floor(CHUNK_FRAME_BYTES / vol.chunkSize))
      const read = async (from: number): Promise<Array<Uint8Array | undefined>> => {
        const slice = hashes.slice(from, from + group)
        const wanted = slice.filter((_, i) => inVolume[from + i])
        if (gate !== undefined) {
          const release = await gate.reserve(peer, wanted.length * vol.chunkSize, AbortSignal.timeout(REQUEST_TIMEOUT_MS))
          if (finished) { release(); return [] }
          held.push(release)
        }
        const got = await source.chunks.getMany(wanted)
        let k = 0
        return slice.map((_, i) => inVolume[from + i] ? got[k++] : undefined)
      }
      let next = read(0)
      pending = next
      for (let from = 0; from < hashes.length; from += group) {
        const data = await next
        if (from + group < hashes.length) pending = next = read(from + group)
        const items = data.map((d, i) => d === undefined
          ? { h: hashes[from + i] }
          : { h: hashes[from + i], d: faults?.serveCorruptChunks === true ? randomBytes(d.byteLength) : d })
        // A bulk frame waits for its turn: one at a time per peer, none while a reader is served.
        const endBulk = endReader === undefined ? await lanes.bulk(peer) : undefined
        try {
          await faults?.links?.pass(peer, data.reduce((n, d) => n + (d?.byteLength ?? 0), 64))
          if (binary) await framed.writeFrame(encodeChunksFrame(items))
          else await framed.write({ v: WIRE_VERSION, t: 'chunks', items })
        } finally {
          endBulk?.()
        }
        onServed?.(peer, data.reduce((n, d) => n + (d?.byteLength ?? 0), 0), vol.name, data.reduce((n, d) => n + (d === undefined ? 0 : 1), 0), endReader !== undefined)
        held.shift()?.()
      }
      await framed.write({ v: WIRE_VERSION, t: 'end' })
      await framed.close()
    } catch (err) {
      log('want from %s failed: %s', peer, (err as Error).message)
      noteBroken(gate, peer, err)
      await answerError(framed, err)
    } finally {
      endReader?.()
      unwatch?.()
      finished = true
      // A read started ahead and not awaited (the request failed meanwhile) must not reject unheard.
      void pending?.catch(() => {})
      for (const release of held.splice(0)) release()
    }
  }, { maxInboundStreams: MAX_INBOUND_STREAMS, maxOutboundStreams: MAX_OUTBOUND_STREAMS })
}

/** Peers known to speak only chunk/1.0.0 (CBOR-wrapped chunks), at most 1,024. */
const v1Only = new Set<string>()

/**
 * Opens a chunk stream: chunk/1.1.0 alone (one protocol, so libp2p can negotiate it without
 * an extra round trip), falling back to 1.0.0 for a peer that lacks it (remembered).
 */
async function dialChunks (libp2p: Libp2p, peer: PeerId, signal?: AbortSignal): Promise<Awaited<ReturnType<Libp2p['dialProtocol']>>> {
  const key = peer.toString()
  if (!v1Only.has(key)) {
    try {
      return await libp2p.dialProtocol(peer, CHUNK_PROTOCOL, { signal })
    } catch (err) {
      if ((err as { name?: string }).name !== 'UnsupportedProtocolError') throw err
      v1Only.add(key)
      // Bounded: a peer forgotten here is asked 1.1.0 first once more.
      if (v1Only.size > 1024) v1Only.delete(v1Only.values().next().value!)
    }
  }
  return await libp2p.dialProtocol(peer, CHUNK_PROTOCOL_V1_0, { signal })
}

export class BadChunkError extends ProtocolError {
  constructor (readonly hash: Uint8Array, why: string) {
    super(Codes.HASH_MISMATCH, `chunk ${hashHex(hash)}: ${why}`)
    this.name = 'BadChunkError'
  }
}

/**
 * Asks `peer` for `hashes` and yields each answer as it arrives. Every returned chunk is
 * verified (sha256 and at most `maxChunk` bytes) before it is yielded; a bad one throws
 * BadChunkError after the good ones before it. Hashes the peer lacks come back without bytes.
 */
export async function * wantChunks (libp2p: Libp2p, peer: PeerId, req: WantRequest, maxChunk: number, signal?: AbortSignal): AsyncGenerator<ChunkItem> {
  if (req.hashes.length === 0) return
  if (req.hashes.length > CHUNK_WANT_MAX) throw new RangeError(`at most ${CHUNK_WANT_MAX} hashes per want-list`)
  const stream = await dialChunks(libp2p, peer, signal)
  const framed = new Framed(stream, MAX_FRAME_BYTES)
  const wanted = new Set(req.hashes.map(hashHex))
  try {
    await framed.write({ v: WIRE_VERSION, t: 'want', volume: req.volume, volumeId: req.volumeId, hashes: req.hashes, ...(req.reader === true ? { p: 1 } : {}) }, { signal })
    while (true) {
      let items: Array<{ h?: unknown, d?: unknown }>
      // Taken in the pieces it arrived in: the chunks are hashed and written from those pieces.
      const raw = await framed.readPiecesOrEnd({ signal })
      const first = raw === undefined || raw.byteLength === 0 ? undefined : raw instanceof Uint8Array ? raw[0] : raw.get(0)
      if (raw !== undefined && first === BINARY_CHUNKS) {
        items = decodeChunksFrame(raw)
      } else {
        // 'end', 'error', or a CBOR-wrapped chunks frame (chunk/1.0.0).
        const msg = framed.decodeMessage(raw)
        if (msg.t === 'end') break
        const frame = expect<Message & { items: unknown }>(msg, 'chunks')
        if (!Array.isArray(frame.items)) throw new ProtocolError(Codes.BAD_MESSAGE, 'chunks frame without items')
        items = frame.items as Array<{ h?: unknown, d?: unknown }>
        // Only a binary frame gives bytes in pieces; here every chunk is one CBOR byte string.
        if (items.some(i => i?.d !== undefined && !(i.d instanceof Uint8Array))) throw new ProtocolError(Codes.BAD_MESSAGE, 'chunk bytes are not a byte string')
      }
      for (const item of items) {
        if (!(item.h instanceof Uint8Array) || !wanted.delete(hashHex(item.h))) {
          throw new ProtocolError(Codes.BAD_MESSAGE, 'peer sent a chunk that was not asked for')
        }
        if (item.d === undefined) { yield { hash: item.h }; continue }
        const d = item.d
        if (!(d instanceof Uint8Array) && !(Array.isArray(d) && d.every(p => p instanceof Uint8Array))) throw new ProtocolError(Codes.BAD_MESSAGE, 'chunk bytes are not a byte string')
        const bytes = d as ChunkBytes
        const n = byteLengthOf(bytes)
        if (n > maxChunk) throw new BadChunkError(item.h, `${n} bytes is over the volume's chunk size`)
        if (Buffer.compare(sha256(bytes), item.h) !== 0) throw new BadChunkError(item.h, 'bytes do not match the hash')
        yield { hash: item.h, bytes }
      }
    }
    if (wanted.size > 0) throw new ProtocolError(Codes.TRUNCATED, `peer ended without answering ${wanted.size} hash(es)`)
    await framed.close()
  } catch (err) {
    framed.abort(err as Error)
    throw err
  }
}
