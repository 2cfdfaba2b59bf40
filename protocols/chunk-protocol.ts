import { randomBytes } from 'node:crypto'
import type { Libp2p, PeerId } from '@libp2p/interface'
import { Framed, errorMessage, expect, type Message } from './framing.js'
import { authorize } from './auth.js'
import { CHUNK_PROTOCOL, WIRE_VERSION, MAX_FRAME_BYTES, MAX_SMALL_FRAME_BYTES, CHUNK_WANT_MAX, CHUNK_FRAME_BYTES, MAX_INBOUND_STREAMS, MAX_OUTBOUND_STREAMS } from './constants.js'
import { ProtocolError, Codes } from '../node/errors.js'
import { sha256, hashHex } from '../store/chunk-store.js'
import { HASH_BYTES, chunkHashes } from '../store/records.js'
import { logger } from '../node/log.js'
import type { Store } from '../store/store.js'

const log = logger('proto:chunk')

/**
 * chunk: a want-list of at most CHUNK_WANT_MAX hashes -> frames of chunk bytes (about
 * CHUNK_FRAME_BYTES each), then 'end'. One want-list per stream: the number of requests a
 * client keeps open is its credit, which bounds what either side buffers.
 */
export interface WantRequest { volume: string, volumeId: string, hashes: Uint8Array[] }

export interface ChunkItem { hash: Uint8Array, bytes?: Uint8Array }

/** Serves chunks from `read` (the local store by default; a wannabe serves what it holds). */
export async function registerChunkHandler (libp2p: Libp2p, store: Store, onServed?: (peer: string, bytes: number) => void, faults?: { serveCorruptChunks?: boolean }): Promise<void> {
  await libp2p.handle(CHUNK_PROTOCOL, async (stream, connection) => {
    const framed = new Framed(stream, MAX_SMALL_FRAME_BYTES)
    const peer = connection.remotePeer.toString()
    try {
      const req = expect<Message & { volume: unknown, volumeId: unknown, hashes: unknown }>(await framed.read(), 'want')
      const vol = await authorize(store, req.volume, req.volumeId, peer)
      if (!Array.isArray(req.hashes) || req.hashes.length > CHUNK_WANT_MAX ||
          !req.hashes.every(h => h instanceof Uint8Array && h.byteLength === HASH_BYTES)) {
        throw new ProtocolError(Codes.BAD_MESSAGE, `want-list must hold 1-${CHUNK_WANT_MAX} sha256 hashes`)
      }
      // Chunks are shared across volumes in the store: serve only those this volume references.
      const hashes = req.hashes as Uint8Array[]
      const inVolume = await store.referencedIn(vol.name, hashes)
      // Chunks of an all-mode write being prepared are served to the members preparing it.
      if (inVolume.some(x => !x)) {
        const prepared = new Set<string>()
        for (const p of await store.listPrepared(vol.name)) for (const h of chunkHashes(p.record)) prepared.add(hashHex(h))
        hashes.forEach((h, i) => { if (!inVolume[i] && prepared.has(hashHex(h))) inVolume[i] = true })
      }
      // Read in groups of about one frame, the next group while the current one is sent.
      const group = Math.max(1, Math.floor(CHUNK_FRAME_BYTES / vol.chunkSize))
      const read = async (from: number): Promise<Array<Uint8Array | undefined>> => {
        const slice = hashes.slice(from, from + group)
        const wanted = slice.filter((_, i) => inVolume[from + i])
        const got = await store.chunks.getMany(wanted)
        let k = 0
        return slice.map((_, i) => inVolume[from + i] ? got[k++] : undefined)
      }
      let next = read(0)
      for (let from = 0; from < hashes.length; from += group) {
        const data = await next
        if (from + group < hashes.length) next = read(from + group)
        const items = data.map((d, i) => d === undefined
          ? { h: hashes[from + i] }
          : { h: hashes[from + i], d: faults?.serveCorruptChunks === true ? randomBytes(d.byteLength) : d })
        await framed.write({ v: WIRE_VERSION, t: 'chunks', items })
        onServed?.(peer, data.reduce((n, d) => n + (d?.byteLength ?? 0), 0))
      }
      await framed.write({ v: WIRE_VERSION, t: 'end' })
      await framed.close()
    } catch (err) {
      log('want from %s failed: %s', peer, (err as Error).message)
      await framed.write(errorMessage(err)).catch(() => {})
      await framed.close()
    }
  }, { maxInboundStreams: MAX_INBOUND_STREAMS, maxOutboundStreams: MAX_OUTBOUND_STREAMS })
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
  const stream = await libp2p.dialProtocol(peer, CHUNK_PROTOCOL, { signal })
  const framed = new Framed(stream, MAX_FRAME_BYTES)
  const wanted = new Set(req.hashes.map(hashHex))
  try {
    await framed.write({ v: WIRE_VERSION, t: 'want', volume: req.volume, volumeId: req.volumeId, hashes: req.hashes }, { signal })
    while (true) {
      const msg = await framed.read({ signal })
      if (msg.t === 'end') break
      const frame = expect<Message & { items: unknown }>(msg, 'chunks')
      if (!Array.isArray(frame.items)) throw new ProtocolError(Codes.BAD_MESSAGE, 'chunks frame without items')
      for (const item of frame.items as Array<{ h?: unknown, d?: unknown }>) {
        if (!(item.h instanceof Uint8Array) || !wanted.delete(hashHex(item.h))) {
          throw new ProtocolError(Codes.BAD_MESSAGE, 'peer sent a chunk that was not asked for')
        }
        if (item.d === undefined) { yield { hash: item.h }; continue }
        if (!(item.d instanceof Uint8Array)) throw new ProtocolError(Codes.BAD_MESSAGE, 'chunk bytes are not a byte string')
        if (item.d.byteLength > maxChunk) throw new BadChunkError(item.h, `${item.d.byteLength} bytes is over the volume's chunk size`)
        if (Buffer.compare(sha256(item.d), item.h) !== 0) throw new BadChunkError(item.h, 'bytes do not match the hash')
        yield { hash: item.h, bytes: item.d }
      }
    }
    if (wanted.size > 0) throw new ProtocolError('TRUNCATED', `peer ended without answering ${wanted.size} hash(es)`)
    await framed.close()
  } catch (err) {
    framed.abort(err as Error)
    throw err
  }
}
