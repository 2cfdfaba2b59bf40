/**
 * Valid messages of every wire protocol, as fast-check arbitraries built from the shapes the
 * handlers read (protocols/*-protocol.ts), aimed at one target volume so a good share of them
 * get past authorization; fuzz-mutate.ts then breaks them.
 */
import fc from 'fast-check'
import { encode } from '../core/codec.js'
import { WIRE_VERSION, INDEX_PROTOCOL, INDEX_PROTOCOL_V1_0, CHUNK_PROTOCOL, CHUNK_PROTOCOL_V1_0, NOTIFY_PROTOCOL, CONTROL_PROTOCOL, WRITE_PROTOCOL, CHUNK_LIST_PART_BYTES } from '../protocols/constants.js'

export const FUZZ_PROTOCOLS = ['index', 'chunk', 'notify', 'control', 'write'] as const
export type FuzzProtocol = typeof FUZZ_PROTOCOLS[number]

/** The protocol ids a fuzz protocol name covers (old versions are still served). */
export const PROTOCOL_IDS: Record<FuzzProtocol, string[]> = {
  index: [INDEX_PROTOCOL, INDEX_PROTOCOL_V1_0],
  chunk: [CHUNK_PROTOCOL, CHUNK_PROTOCOL_V1_0],
  notify: [NOTIFY_PROTOCOL],
  control: [CONTROL_PROTOCOL],
  write: [WRITE_PROTOCOL]
}

/** What the generators aim at: the target's volume, its members, chunks and files. */
export interface FuzzContext {
  volume: string
  volumeId: string
  generation: number
  members: string[]
  chunkSize: number
  /** Hashes of chunks the volume references. */
  hashes: Uint8Array[]
  paths: string[]
}

/** One generated request: the message, and raw frames that follow it (split chunk lists). */
export interface Request { msg: Record<string, unknown>, trailer: Uint8Array[] }

const hex = (bytes: number): fc.Arbitrary<string> => fc.uint8Array({ minLength: bytes, maxLength: bytes }).map(b => Buffer.from(b).toString('hex'))

/** The target volume (most of the time), or a wrong name or id: both must be refused alike. */
function volumeRef (ctx: FuzzContext): fc.Arbitrary<{ volume: string, volumeId: string }> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constant({ volume: ctx.volume, volumeId: ctx.volumeId }) },
    { weight: 1, arbitrary: hex(16).map(volumeId => ({ volume: ctx.volume, volumeId })) },
    { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 70 }), hex(16)).map(([volume, volumeId]) => ({ volume, volumeId })) }
  )
}

const seqArb = fc.oneof(fc.nat({ max: 50 }), fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER))
const hashArb = (ctx: FuzzContext): fc.Arbitrary<Uint8Array> => fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...ctx.hashes) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 32, maxLength: 32 }) }
)

export function indexRequest (ctx: FuzzContext): fc.Arbitrary<Request> {
  return fc.tuple(volumeRef(ctx), seqArb, fc.option(fc.integer({ min: -5, max: 2000 }), { nil: undefined }), fc.boolean(), fc.boolean())
    .map(([ref, since, limit, count, scan]) => ({ msg: { v: WIRE_VERSION, t: 'index-req', ...ref, since, ...(limit !== undefined ? { limit } : {}), ...(count ? { count } : {}), ...(scan ? { scan } : {}) }, trailer: [] }))
}

export function wantRequest (ctx: FuzzContext): fc.Arbitrary<Request> {
  return fc.tuple(volumeRef(ctx), fc.array(hashArb(ctx), { minLength: 1, maxLength: 64 }))
    .map(([ref, hashes]) => ({ msg: { v: WIRE_VERSION, t: 'want', ...ref, hashes }, trailer: [] }))
}

export function notifyRequest (ctx: FuzzContext): fc.Arbitrary<Request> {
  return fc.tuple(volumeRef(ctx), seqArb, fc.option(fc.constantFrom('steady', 'copy', 'merge', 'x'.repeat(40)), { nil: undefined }), fc.option(fc.nat({ max: ctx.generation + 3 }), { nil: undefined }))
    .map(([ref, seq, state, generation]) => ({ msg: { v: WIRE_VERSION, t: 'notify', ...ref, seq, ...(state !== undefined ? { state } : {}), ...(generation !== undefined ? { generation } : {}) }, trailer: [] }))
}

/**
 * A volume descriptor. Names come from a small pool so a member's ensure-volume cannot create
 * an unbounded number of volumes on the target; the target's members are kept in every
 * descriptor of its own volume (a malicious member may change membership: that is not a fuzz
 * finding, and would stop the health check).
 */
function descriptor (ctx: FuzzContext): fc.Arbitrary<Record<string, unknown>> {
  return fc.tuple(
    fc.oneof(fc.constant({ name: ctx.volume, id: ctx.volumeId }), fc.tuple(fc.constantFrom('fz-a', 'fz-b'), fc.constantFrom('0'.repeat(32), 'f'.repeat(32))).map(([name, id]) => ({ name, id }))),
    fc.integer({ min: 0, max: ctx.generation + 2 }),
    fc.constantFrom('active', 'all', 'bogus'),
    fc.constantFrom(ctx.chunkSize, 0, 1 << 30),
    fc.array(fc.string({ maxLength: 60 }), { maxLength: 3 })
  ).map(([ref, generation, writeMode, chunkSize, extra]) => ({
    ...ref, generation, members: [...ctx.members, ...extra].sort(), writeMode, chunkSize, createdAt: Date.now(), genId: '', history: []
  }))
}

export function controlRequest (ctx: FuzzContext): fc.Arbitrary<Request> {
  const ask = fc.oneof(
    fc.tuple(descriptor(ctx), fc.boolean()).map(([volume, probe]) => ({ t: 'ensure-volume', volume, probe })),
    fc.tuple(descriptor(ctx), fc.boolean(), fc.option(fc.string({ maxLength: 70 }), { nil: undefined })).map(([volume, release, attempt]) => ({ t: 'prepare-generation', volume, release, ...(attempt !== undefined ? { attempt } : {}) })),
    fc.tuple(volumeRef(ctx), fc.nat(), fc.string({ maxLength: 20 }), fc.string({ maxLength: 70 })).map(([ref, generation, genId, attempt]) => ({ t: 'proposal', ...ref, generation, genId, attempt })),
    fc.array(fc.oneof(fc.constantFrom(...ctx.members), fc.string({ maxLength: 130 })), { maxLength: 70 }).map(peers => ({ t: 'locate', peers })),
    fc.tuple(volumeRef(ctx), fc.oneof(fc.constantFrom(...ctx.members), fc.string())).map(([ref, member]) => ({ t: 'vouch', ...ref, member })),
    fc.tuple(volumeRef(ctx), fc.boolean()).map(([ref, size]) => ({ t: 'state', ...ref, size })),
    fc.string({ maxLength: 20 }).map(t => ({ t }))
  )
  return ask.map(m => ({ msg: { v: WIRE_VERSION, ...m }, trailer: [] }))
}

/** A file record as a prepare carries it; its chunk list may be split into trailer frames. */
function fileRecord (ctx: FuzzContext): fc.Arbitrary<{ record: Record<string, unknown>, split?: unknown[], trailer: Uint8Array[] }> {
  return fc.tuple(
    fc.oneof(fc.constantFrom(...ctx.paths), fc.constantFrom('/fz/new', '/a/../b', 'rel', '/x\u202e', '/caf\u0065\u0301')),
    fc.array(hashArb(ctx), { maxLength: 8 }),
    fc.nat({ max: 3 }),
    fc.boolean()
  ).map(([path, chunks, extra, split]) => {
    const list = Buffer.concat(chunks)
    const size = Math.max(0, chunks.length * ctx.chunkSize - extra)
    const record = { v: 1, path, size, mode: 0o644, mtime: Date.now(), chunkSize: ctx.chunkSize, chunks: split ? new Uint8Array(0) : new Uint8Array(list), vv: { [ctx.members[0]]: 1 }, deleted: false }
    if (!split || list.byteLength === 0) return { record, trailer: [] }
    const trailer: Uint8Array[] = []
    for (let off = 0; off < list.byteLength; off += CHUNK_LIST_PART_BYTES) trailer.push(new Uint8Array(list.subarray(off, off + CHUNK_LIST_PART_BYTES)))
    return { record, split: [{ i: 0, bytes: list.byteLength }], trailer }
  })
}

export function writeRequest (ctx: FuzzContext): fc.Arbitrary<Request> {
  const tx = fc.oneof({ weight: 5, arbitrary: hex(16) }, { weight: 1, arbitrary: fc.string({ maxLength: 40 }) })
  return fc.oneof(
    // write/1.1.0: a small header (authorized first), then the body frame, then the split parts.
    fc.tuple(volumeRef(ctx), tx, fileRecord(ctx)).map(([ref, txId, r]) => ({
      msg: { v: WIRE_VERSION, t: 'prepare', ...ref, txId },
      trailer: [encode({ v: WIRE_VERSION, t: 'prepare-body', record: r.record, ...(r.split !== undefined ? { split: r.split } : {}) }), ...r.trailer]
    })),
    fc.tuple(volumeRef(ctx), tx, fc.constantFrom('commit', 'abort', 'status', 'nope')).map(([ref, txId, t]) => ({ msg: { v: WIRE_VERSION, t, ...ref, txId }, trailer: [] }))
  )
}

export const REQUESTS: Record<FuzzProtocol, (ctx: FuzzContext) => fc.Arbitrary<Request>> = {
  index: indexRequest, chunk: wantRequest, notify: notifyRequest, control: controlRequest, write: writeRequest
}
