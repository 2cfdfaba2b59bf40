/**
 * Every input a fuzz run saved (test/fuzz-corpus/NAME/*.json, testing/fuzz-findings.ts) is
 * replayed alone against a fresh real node: the handler must end its side, not throw, and the
 * member must still read through the node, whose store must verify afterwards.
 */
import '../core/polyfill.js'
import test from 'ava'
import { join } from 'node:path'
import { DIST } from './helpers.js'
import { startFuzzTarget } from '../testing/fuzz-target.js'
import { send, type SendMode } from '../testing/fuzz-send.js'
import { loadCorpus, caseOf } from '../testing/fuzz-findings.js'
import { httpCaseOf, sendRaw } from '../testing/fuzz-http.js'
import { encode, decode } from '../core/codec.js'
import { varint } from '../protocols/framing.js'
import { WIRE_VERSION, WRITE_PROTOCOL, MAX_FRAME_BYTES, MAX_MESSAGE_ITEMS } from '../protocols/constants.js'

const CORPUS = join(DIST, '..', 'test', 'fuzz-corpus')
const corpus = await loadCorpus(CORPUS)

test('the fuzz corpus loads', t => {
  t.true(Array.isArray(corpus))
  t.log(`${corpus.length} saved inputs`)
})

for (const { file, input } of corpus) {
  test(`fuzz regression ${file} (${input.kind ?? '?'}: ${(input.case?.mutation ?? input.http?.note ?? '').slice(0, 80)})`, async t => {
    const target = await startFuzzTarget({ api: input.http !== undefined })
    t.teardown(async () => { await target.close() })
    if (input.case !== undefined) {
      const c = caseOf(input.case)
      // An abandoned stream is replayed as abandoned: the node must end it on its own.
      for (const mode of ['memory', 'wire'] as SendMode[]) {
        const sent = await send(mode, target, c, 45_000)
        t.is(sent.hung, undefined, `${mode}: the handler ends its side`)
        t.is(sent.threw, undefined, `${mode}: the handler does not throw`)
        if (sent.abandoned !== undefined) await sent.abandoned
      }
    } else if (input.http !== undefined) {
      const port = Number(new URL(target.node.apiUrl!).port)
      const r = await sendRaw(port, httpCaseOf(input.http), 45_000)
      t.false(r.hung, 'the API answers or closes')
      t.not(r.status, 500, r.body)
    }
    await target.checkServes()
    const verified = await target.stopAndVerify()
    t.true(verified.files >= 7)
  })
}

/** A write/1.0.0 prepare whose record is one CBOR array of `n` zeros (a frame just under the 5 MiB cap). */
function arrayPrepare (volumeId: string, n: number): Uint8Array {
  const head = Buffer.alloc(5)
  head[0] = (4 << 5) | 26
  head.writeUInt32BE(n, 1)
  const msg = encode({ v: WIRE_VERSION, t: 'prepare', volume: 'fuzzed', volumeId, txId: 'a'.repeat(32) })
  const body = Buffer.concat([Uint8Array.of(0xa6), msg.subarray(1), encode('record'), head, Buffer.alloc(n, 0)])
  return Buffer.concat([varint(body.byteLength), body])
}

test('a message of more CBOR items than MAX_MESSAGE_ITEMS is refused before it is built', t => {
  t.throws(() => decode(Buffer.concat([Uint8Array.of(0x9a, 0, 4, 0, 0), Buffer.alloc(0x40000)]), { maxItems: MAX_MESSAGE_ITEMS }), { message: /more than 262144 CBOR items/ })
})

test('found by the fuzzer: 8 streams each sending a 5 MiB frame of 5 million CBOR zeros no longer take the node\'s heap past 150 MiB (was ~1.6 GiB RSS)', async t => {
  const target = await startFuzzTarget()
  t.teardown(async () => { await target.close() })
  const frame = arrayPrepare(target.ctx.volumeId, MAX_FRAME_BYTES - 300)
  const base = process.memoryUsage().heapUsed
  let peak = base
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().heapUsed) }, 10)
  try {
    await Promise.all(Array.from({ length: 8 }, async () => {
      const sent = await send('wire', target, { protocol: WRITE_PROTOCOL, identity: 'stranger', bytes: frame, frames: 1, cuts: [], delays: [], end: 'close', mutation: 'array of 5M zeros' }, 60_000)
      t.is(sent.hung, undefined)
    }))
  } finally { clearInterval(timer) }
  t.log(`heap ${Math.round(base / 2 ** 20)} -> peak ${Math.round(peak / 2 ** 20)} MiB`)
  t.true(peak - base < 150 * 2 ** 20, `heap grew by ${Math.round((peak - base) / 2 ** 20)} MiB`)
  await target.checkServes()
})
