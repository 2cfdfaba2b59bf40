import type { Framed } from './framing.js'
import { ProtocolError, Codes } from '../core/errors.js'
import { INLINE_CHUNK_LIST_BYTES, MAX_CHUNK_LIST_BYTES, CHUNK_LIST_PART_BYTES, INDEX_PAGE_BYTES } from './constants.js'

/** The most chunk-list bytes one message may announce in all (one longest list and a page). */
const MAX_SPLIT_BYTES = MAX_CHUNK_LIST_BYTES + INDEX_PAGE_BYTES

/**
 * File records whose chunk list is too long for one frame (a 64 KiB-chunked file of more than
 * a few GiB) travel split: the message carries the record with an empty chunk list and a
 * `split` entry { i: index of the record, bytes: length of its list }, and the lists follow
 * the message as raw frames of at most CHUNK_LIST_PART_BYTES, in record order. Records with
 * short lists travel whole, as before.
 */
export interface SplitEntry { i: number, bytes: number }

/**
 * Records as they go in the message, the split entries, and the frames to send after it
 * (views of the records' lists, no copy).
 */
export function splitRecords<R extends { chunks: Uint8Array }> (records: R[], inlineMax = INLINE_CHUNK_LIST_BYTES): { records: R[], split: SplitEntry[], parts: Uint8Array[] } {
  const split: SplitEntry[] = []
  const parts: Uint8Array[] = []
  const out = records.map((rec, i) => {
    if (rec.chunks.byteLength <= inlineMax) return rec
    split.push({ i, bytes: rec.chunks.byteLength })
    for (let off = 0; off < rec.chunks.byteLength; off += CHUNK_LIST_PART_BYTES) parts.push(rec.chunks.subarray(off, off + CHUNK_LIST_PART_BYTES))
    return { ...rec, chunks: new Uint8Array(0) }
  })
  return { records: out, split, parts }
}

/** Sends raw frames (the parts of split chunk lists) after a message. */
export async function writeParts (framed: Framed, parts: Uint8Array[], signal?: AbortSignal): Promise<void> {
  for (const part of parts) await framed.writeFrame([part], { signal })
}

/**
 * Reads the chunk lists announced by `split` and puts each back into its raw record (before
 * the record is validated: its chunk count must match its size). Checks every entry first, so
 * a lying peer cannot make this allocate more than MAX_CHUNK_LIST_BYTES per record.
 */
export async function readChunkLists (framed: Framed, rawRecords: unknown[], split: unknown, signal?: AbortSignal): Promise<void> {
  if (split === undefined) return
  if (!Array.isArray(split)) throw new ProtocolError(Codes.BAD_MESSAGE, 'split must be a list')
  let prev = -1
  let total = 0
  const entries = split.map((e: unknown) => {
    const s = e as { i?: unknown, bytes?: unknown } | null
    if (s === null || typeof s !== 'object' || typeof s.i !== 'number' || typeof s.bytes !== 'number' ||
        !Number.isSafeInteger(s.i) || s.i <= prev || s.i >= rawRecords.length ||
        !Number.isSafeInteger(s.bytes) || s.bytes <= 0 || s.bytes % 32 !== 0) {
      throw new ProtocolError(Codes.BAD_MESSAGE, 'malformed split entry')
    }
    if (s.bytes > MAX_CHUNK_LIST_BYTES) throw new ProtocolError(Codes.MESSAGE_TOO_LARGE, `a chunk list of ${s.bytes} bytes is over the limit of ${MAX_CHUNK_LIST_BYTES}`)
    // An honest page holds at most ~1 MiB of records before its last, long one: cap the sum too.
    total += s.bytes
    if (total > MAX_SPLIT_BYTES) throw new ProtocolError(Codes.MESSAGE_TOO_LARGE, `split chunk lists of ${total}+ bytes in one message are over the limit of ${MAX_SPLIT_BYTES}`)
    prev = s.i
    return { i: s.i, bytes: s.bytes }
  })
  for (const { i, bytes } of entries) {
    const rec = rawRecords[i] as Record<string, unknown> | null
    if (rec === null || typeof rec !== 'object') throw new ProtocolError(Codes.BAD_MESSAGE, 'split entry names no record')
    const list = new Uint8Array(bytes)
    let got = 0
    while (got < bytes) {
      const part = await framed.readFrameOrEnd({ signal })
      if (part === undefined) throw new ProtocolError(Codes.TRUNCATED, 'stream ended inside a chunk list')
      if (part.byteLength === 0 || got + part.byteLength > bytes) throw new ProtocolError(Codes.BAD_MESSAGE, 'chunk list part does not fit its announced length')
      list.set(part, got)
      got += part.byteLength
    }
    rec.chunks = list
  }
}
