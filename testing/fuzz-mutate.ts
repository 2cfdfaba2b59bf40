/**
 * Turns valid requests (fuzz-messages.ts) into fuzz cases: messages with wrong types, unknown
 * fields, huge or deeply nested values; frames whose length prefix lies, truncated, oversized,
 * garbled or repeated; bytes delivered at once or dribbled with delays; streams closed, reset
 * or abandoned mid-frame.
 */
import fc from 'fast-check'
import { encode } from '../core/codec.js'
import { varint } from '../protocols/framing.js'
import { MAX_FRAME_BYTES, MAX_SMALL_FRAME_BYTES } from '../protocols/constants.js'
import { PROTOCOL_IDS, REQUESTS, type FuzzContext, type FuzzProtocol, type Request } from './fuzz-messages.js'

/** Bytes a case of repeated frames may reach. */
const REPEAT_BYTES = 4 * 1024 * 1024

export type Identity = 'stranger' | 'member'
export type StreamEnd = 'close' | 'reset' | 'abandon'

/** One stream's worth of input: what is sent, how, and by whom. */
export interface FuzzCase {
  protocol: string
  identity: Identity
  /** Every byte sent on the stream, in order. */
  bytes: Uint8Array
  /** Length prefixes in `bytes` as generated (lying ones included). */
  frames: number
  /** Send `bytes` in pieces ending at these offsets (ascending; the last piece runs to the end). */
  cuts: number[]
  /** Milliseconds to wait after each piece (a slow sender). */
  delays: number[]
  end: StreamEnd
  /** What was done to the valid request, for the report. */
  mutation: string
}

/** The frame cap the handler of `protocol` reads with. */
export function capOf (protocol: string): number {
  return protocol.includes('/write/') ? MAX_FRAME_BYTES : MAX_SMALL_FRAME_BYTES
}

/** Any CBOR value of a type a field is unlikely to expect. */
const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(), fc.double(), fc.bigInt({ min: -(2n ** 64n) + 1n, max: 2n ** 64n - 1n }), fc.string({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 40 }), fc.boolean(), fc.constant(null), fc.constant(undefined),
  fc.array(fc.integer(), { maxLength: 5 }), fc.dictionary(fc.string({ maxLength: 8 }), fc.integer(), { maxKeys: 4 })
)

/** CBOR head of major type `major` with a 32-bit length. */
const head32 = (major: number, n: number): Buffer => { const b = Buffer.alloc(5); b[0] = (major << 5) | 26; b.writeUInt32BE(n, 1); return b }

/**
 * Values that are large to decode or hold, as raw CBOR (the fuzzer keeps bytes, not the JS
 * values, so the RSS it samples is mostly the node's): long strings and byte strings, arrays
 * of many small items (each decodes to a JS value many times its one byte), wide maps.
 */
const hugeRaw = (cap: number): fc.Arbitrary<{ raw: Uint8Array, what: string }> => fc.oneof(
  fc.tuple(fc.integer({ min: 1000, max: cap + 65536 }), fc.constantFrom(0x61, 0x7f)).map(([n, c]) => ({ raw: Buffer.concat([head32(3, n), Buffer.alloc(n, c)]), what: `string of ${n}` })),
  fc.integer({ min: 1000, max: cap + 65536 }).map(n => ({ raw: Buffer.concat([head32(4, n), Buffer.alloc(n, 0)]), what: `array of ${n}` })),
  fc.integer({ min: 1000, max: cap + 65536 }).map(n => ({ raw: Buffer.concat([head32(2, n), Buffer.alloc(n, 0)]), what: `bytes of ${n}` })),
  fc.integer({ min: 100, max: 20_000 }).map(n => ({ raw: Buffer.concat([head32(5, n), ...Array.from({ length: n }, (_, i) => Buffer.concat([encode(`k${i}`), Uint8Array.of(0)]))]), what: `map of ${n}` })),
  // A length that claims more items than follow.
  fc.constantFrom(4, 3, 2).map(major => ({ raw: head32(major, 0xffffffff), what: `major ${major} claiming 2^32 items` }))
)

/** A message's CBOR with `key` set to `raw` (pre-encoded bytes, e.g. nesting cborg would not encode). */
function withRawField (msg: Record<string, unknown>, key: string, raw: Uint8Array): Uint8Array {
  const rest = Object.fromEntries(Object.entries(msg).filter(([k]) => k !== key))
  const body = encode(rest)
  const n = Object.keys(rest).length + 1
  if (n > 23) return body
  return Buffer.concat([Uint8Array.of(0xa0 + n), body.subarray(1), encode(key), raw])
}

/** depth nested one-element arrays (or maps) around a 0. */
function deepNesting (depth: number, map: boolean): Uint8Array {
  const out = Buffer.alloc(map ? depth * 3 + 1 : depth + 1)
  let o = 0
  for (let i = 0; i < depth; i++) {
    if (map) { out[o++] = 0xa1; out[o++] = 0x61; out[o++] = 0x6b } else out[o++] = 0x81
  }
  out[o] = 0x00
  return out
}

type BodyMutation = (msg: Record<string, unknown>) => { body: Uint8Array, what: string }

/** The message part of a case: the valid CBOR, or one of its breakages. */
function bodyOf (req: Request, cap: number): fc.Arbitrary<{ body: Uint8Array, what: string }> {
  const keys = Object.keys(req.msg)
  const key = fc.constantFrom(...keys)
  const asIs: BodyMutation = m => ({ body: encode(m), what: 'valid' })
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(asIs(req.msg)) },
    { weight: 3, arbitrary: fc.tuple(key, wrongValue).map(([k, v]) => ({ body: encode({ ...req.msg, [k]: v }), what: `wrong type of ${k}` })) },
    { weight: 1, arbitrary: key.map(k => ({ body: encode(Object.fromEntries(Object.entries(req.msg).filter(([x]) => x !== k))), what: `no ${k}` })) },
    {
      weight: 2,
      arbitrary: fc.tuple(fc.constantFrom('__proto__', 'constructor', 'toString', 'x', 'hasOwnProperty'), wrongValue)
        .map(([k, v]) => ({ body: withRawField(req.msg, k, encode(v)), what: `unknown field ${k}` }))
    },
    { weight: 1, arbitrary: fc.tuple(key, hugeRaw(cap)).map(([k, v]) => ({ body: withRawField(req.msg, k, v.raw), what: `${k}: ${v.what}` })) },
    {
      weight: 1,
      arbitrary: fc.tuple(key, fc.integer({ min: 50, max: 20_000 }), fc.boolean())
        .map(([k, depth, map]) => ({ body: withRawField(req.msg, k, deepNesting(depth, map)), what: `${k} nested ${depth} deep` }))
    },
    { weight: 1, arbitrary: fc.constantFrom(0, 2, -1, 1.5, 2 ** 60).map(v => ({ body: encode({ ...req.msg, v }), what: `version ${v}` })) },
    { weight: 1, arbitrary: wrongValue.map(v => ({ body: encode(v), what: 'not a map' })) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 40 }).map(n => ({ body: deepNesting(n * 1000, n % 2 === 0), what: `bare nesting ${n * 1000}` })) }
  )
}

/** Byte-level breakage of one frame (prefix + body). */
function frameOf (body: Uint8Array, cap: number): fc.Arbitrary<{ frame: Uint8Array, what: string }> {
  const lp = (len: number, b: Uint8Array): Uint8Array => Buffer.concat([varint(len), b])
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant({ frame: lp(body.byteLength, body), what: '' }) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 100_000 }).map(d => ({ frame: lp(body.byteLength + d, body), what: `prefix +${d}` })) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 64 }).map(d => ({ frame: lp(Math.max(0, body.byteLength - d), body), what: `prefix -${d}` })) },
    { weight: 1, arbitrary: fc.nat({ max: body.byteLength }).map(n => ({ frame: lp(body.byteLength, body).subarray(0, n + 1), what: `truncated at ${n + 1}` })) },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom(cap + 1, cap * 4, 2 ** 31, 2 ** 53 - 1), fc.integer({ min: 0, max: 70_000 }))
        .map(([len, sent]) => ({ frame: lp(len, new Uint8Array(sent)), what: `oversized prefix ${len}, ${sent} bytes sent` }))
    },
    { weight: 1, arbitrary: fc.integer({ min: 9, max: 16 }).map(n => ({ frame: Buffer.concat([Buffer.alloc(n, 0xff), body]), what: `${n}-byte varint` })) },
    {
      weight: 1,
      arbitrary: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }).map(bits => {
        const b = Buffer.from(body)
        for (const x of bits) if (b.byteLength > 0) b[x % b.byteLength] ^= 1 << (x % 8)
        return { frame: lp(b.byteLength, b), what: `${bits.length} bit flips` }
      })
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map(g => ({ frame: lp(g.byteLength, g), what: `garbage ${g.byteLength}` })) },
    { weight: 1, arbitrary: fc.constant({ frame: lp(0, new Uint8Array(0)), what: 'empty frame' }) }
  )
}

/** How the bytes go: in one piece, or dribbled; then closed, reset or left open. */
function delivery (length: number): fc.Arbitrary<{ cuts: number[], delays: number[], end: StreamEnd }> {
  const pieces = fc.oneof(
    { weight: 6, arbitrary: fc.constant({ cuts: [] as number[], delays: [] as number[] }) },
    {
      weight: 1,
      arbitrary: fc.array(fc.tuple(fc.nat({ max: Math.max(0, length - 1) }), fc.nat({ max: 20 })), { minLength: 1, maxLength: 12 })
        .map(ps => { const s = ps.sort((a, b) => a[0] - b[0]); return { cuts: s.map(p => p[0]), delays: s.map(p => p[1]) } })
    }
  )
  const end = fc.oneof({ weight: 12, arbitrary: fc.constant<StreamEnd>('close') }, { weight: 1, arbitrary: fc.constant<StreamEnd>('reset') }, { weight: 1, arbitrary: fc.constant<StreamEnd>('abandon') })
  return fc.tuple(pieces, end).map(([p, e]) => ({ ...p, end: e }))
}

/** Fuzz cases of `name`: a valid request, broken at the message and frame level, repeated, delivered. */
export function fuzzCase (name: FuzzProtocol, ctx: FuzzContext, identities: Identity[] = ['stranger', 'member']): fc.Arbitrary<FuzzCase> {
  return fc.tuple(fc.constantFrom(...PROTOCOL_IDS[name]), fc.constantFrom(...identities), REQUESTS[name](ctx)).chain(([protocol, identity, req]) => {
    const cap = capOf(protocol)
    const trailer = fc.constant(req.trailer.map(p => Buffer.concat([varint(p.byteLength), p])))
    const repeat = fc.oneof({ weight: 9, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 200 }) })
    return fc.tuple(bodyOf(req, cap).chain(b => frameOf(b.body, cap).map(f => ({ ...f, what: [b.what, f.what].filter(s => s !== '').join(', ') }))), trailer, repeat)
      .chain(([f, tail, repeat]) => {
        const one = Buffer.concat([f.frame, ...tail])
        // Many frames on one stream, but never more than a few MiB per case.
        const times = Math.max(1, Math.min(repeat, Math.floor(REPEAT_BYTES / one.byteLength)))
        const bytes = times === 1 ? one : Buffer.concat(new Array<Buffer>(times).fill(one))
        return delivery(bytes.byteLength).map(d => ({
          protocol, identity, bytes: new Uint8Array(bytes), frames: times * (1 + tail.length), ...d,
          mutation: [f.what, times > 1 ? `x${times}` : '', d.cuts.length > 0 ? `${d.cuts.length + 1} pieces` : '', d.end !== 'close' ? d.end : ''].filter(s => s !== '').join(', ')
        }))
      })
  })
}
