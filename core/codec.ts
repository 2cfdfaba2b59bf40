import * as cborg from 'cborg'
import { InvalidInputError, Codes } from './errors.js'
import { isValid as isValidVector } from './version-vector.js'
import { HASH_BYTES, WRITE_MODES, MEMBER_STATES, MAX_READERS, type FileRecord, type VolumeRecord, type PeerRecord } from './records.js'

/** Records are stored and sent as CBOR: compact, schemaless on the wire, validated here. */
export function encode (value: unknown): Uint8Array {
  return cborg.encode(value)
}

/** cborg's own decode defaults, which its tokeniser needs when it is given one. */
const CBORG_DEFAULTS = { strict: false, allowIndefinite: true, allowUndefined: true, allowBigInt: true }

/**
 * `maxItems` bounds the CBOR items (every value, key and container) of a message from a peer:
 * each item becomes a JS value many times its one byte, so a 5 MiB frame of one array of
 * zeros made ~200 MiB of heap and RSS (found by the fuzzer, docs/FUZZING.md).
 */
export function decode (bytes: Uint8Array, opts: { maxItems?: number } = {}): unknown {
  try {
    if (opts.maxItems === undefined) return cborg.decode(bytes)
    const max = opts.maxItems
    const tokens = new cborg.Tokenizer(bytes, CBORG_DEFAULTS)
    let items = 0
    const tokenizer = {
      done: () => tokens.done(),
      pos: () => tokens.pos(),
      next: () => {
        if (++items > max) throw new InvalidInputError(Codes.MESSAGE_TOO_LARGE, `message of more than ${max} CBOR items`)
        return tokens.next()
      }
    }
    return cborg.decode(bytes, { tokenizer })
  } catch (err) {
    if (err instanceof InvalidInputError) throw err
    throw new InvalidInputError(Codes.BAD_MESSAGE, `malformed CBOR: ${(err as Error).message}`)
  }
}

const isInt = (n: unknown, min = 0): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= min
const isStr = (s: unknown, max = 4096): s is string => typeof s === 'string' && s.length > 0 && s.length <= max

function bad (what: string, why: string): never {
  throw new InvalidInputError(Codes.BAD_MESSAGE, `invalid ${what}: ${why}`)
}

export function asFileRecord (x: unknown): FileRecord {
  if (x === null || typeof x !== 'object') bad('file record', 'not a map')
  const r = x as Record<string, unknown>
  if (!isInt(r.v, 1)) bad('file record', 'version')
  if (!isStr(r.path) || !r.path.startsWith('/')) bad('file record', 'path')
  if (!isInt(r.size)) bad('file record', 'size')
  if (!isInt(r.mode)) bad('file record', 'mode')
  if (!isInt(r.mtime)) bad('file record', 'mtime')
  if (!isInt(r.chunkSize, 1)) bad('file record', 'chunkSize')
  if (!(r.chunks instanceof Uint8Array) || r.chunks.byteLength % HASH_BYTES !== 0) bad('file record', 'chunks')
  if (!isValidVector(r.vv)) bad('file record', 'version vector')
  if (typeof r.deleted !== 'boolean') bad('file record', 'deleted')
  if (!isInt(r.seq)) bad('file record', 'seq')
  const count = r.chunks.byteLength / HASH_BYTES
  if (count !== Math.ceil(r.size / r.chunkSize)) bad('file record', 'chunk count does not match size')
  return {
    v: r.v, path: r.path, size: r.size, mode: r.mode, mtime: r.mtime, chunkSize: r.chunkSize,
    chunks: r.chunks, vv: r.vv, deleted: r.deleted, seq: r.seq
  }
}

function isHistoryEntry (e: unknown): boolean {
  if (e === null || typeof e !== 'object') return false
  const h = e as Record<string, unknown>
  return isInt(h.generation, 1) && isStr(h.genId, 64)
}

export function asVolumeRecord (x: unknown): VolumeRecord {
  if (x === null || typeof x !== 'object') bad('volume record', 'not a map')
  const r = x as Record<string, unknown>
  if (!isInt(r.v, 1)) bad('volume record', 'version')
  if (!isStr(r.name, 63)) bad('volume record', 'name')
  if (typeof r.id !== 'string' || !/^[0-9a-f]{32}$/.test(r.id)) bad('volume record', 'id')
  if (!isInt(r.generation, 1)) bad('volume record', 'generation')
  if (!Array.isArray(r.members) || !r.members.every(m => isStr(m, 128))) bad('volume record', 'members')
  if (r.readers !== undefined && (!Array.isArray(r.readers) || r.readers.length > MAX_READERS || !r.readers.every(m => isStr(m, 128)) ||
      r.readers.some(m => (r.members as string[]).includes(m)))) bad('volume record', 'readers')
  if (!WRITE_MODES.includes(r.writeMode as never)) bad('volume record', 'writeMode')
  if (!isInt(r.chunkSize, 1)) bad('volume record', 'chunkSize')
  if (!isInt(r.createdAt)) bad('volume record', 'createdAt')
  if (!isInt(r.seq)) bad('volume record', 'seq')
  if (typeof r.dirty !== 'boolean') bad('volume record', 'dirty')
  if (r.state !== undefined && !MEMBER_STATES.includes(r.state as never)) bad('volume record', 'state')
  if (r.removedFrom !== undefined && r.removedFrom !== 'copy' && r.removedFrom !== 'merge') bad('volume record', 'removedFrom')
  if (r.genId !== undefined && !isStr(r.genId, 64)) bad('volume record', 'genId')
  if (r.history !== undefined && (!Array.isArray(r.history) || r.history.length > 64 ||
      !r.history.every(isHistoryEntry))) bad('volume record', 'history')
  if (r.logFloor !== undefined && !isInt(r.logFloor)) bad('volume record', 'logFloor')
  return r as unknown as VolumeRecord
}

export function asPeerRecord (x: unknown): PeerRecord {
  if (x === null || typeof x !== 'object') bad('peer record', 'not a map')
  const r = x as Record<string, unknown>
  if (!isStr(r.peerId, 128)) bad('peer record', 'peerId')
  if (!Array.isArray(r.addrs) || !r.addrs.every(a => isStr(a, 1024))) bad('peer record', 'addrs')
  if (!isInt(r.lastSeen)) bad('peer record', 'lastSeen')
  return r as unknown as PeerRecord
}
