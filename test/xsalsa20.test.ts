/**
 * core/xsalsa20.ts against the XSalsa20 that @libp2p/pnet uses (the `xsalsa20` package, its
 * dependency): the same key stream for random keys, nonces and ways of cutting the input.
 * The block function is @noble/ciphers'; the position kept between calls is ours.
 */
import '../core/polyfill.js'
import test from 'ava'
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { XSalsa20, XSALSA20_MAX_BYTES, KeyStreamExhaustedError } from '../core/xsalsa20.js'

interface RefXor { update: (input: Uint8Array) => Uint8Array, finalize: () => void }
// Resolved from pnet's own dependencies: the implementation the wire protocol was tested with.
const reference = createRequire(import.meta.resolve('@libp2p/pnet'))('xsalsa20') as (nonce: Uint8Array, key: Uint8Array) => RefXor

test('the key stream equals the reference for random keys, nonces and input cuts', t => {
  for (let round = 0; round < 100; round++) {
    const key = randomBytes(32)
    const nonce = randomBytes(24)
    const ref = reference(nonce, key)
    const ours = new XSalsa20(nonce, key)
    for (let piece = 0; piece < 12; piece++) {
      const data = randomBytes([0, 1, 63, 64, 65, 200, 4096][piece % 7] + (round % 3))
      t.deepEqual(Buffer.from(ours.update(data)), Buffer.from(ref.update(data)), `round ${round} piece ${piece}`)
    }
    ref.finalize()
  }
})

test('one large update equals many small ones, and decrypting gives the plaintext back', t => {
  const key = randomBytes(32)
  const nonce = randomBytes(24)
  const plain = randomBytes(300_000)
  const whole = new XSalsa20(nonce, key).update(plain)
  const cut = new XSalsa20(nonce, key)
  const parts: Uint8Array[] = []
  for (let i = 0; i < plain.length; i += 777) parts.push(cut.update(plain.subarray(i, i + 777)))
  t.deepEqual(Buffer.concat(parts), Buffer.from(whole))
  t.deepEqual(Buffer.from(new XSalsa20(nonce, key).update(whole)), plain)
  const ref = reference(nonce, key)
  t.deepEqual(Buffer.from(ref.update(plain)), Buffer.from(whole))
  ref.finalize()
})

test('another nonce or key gives another stream; bad sizes are refused', t => {
  const key = randomBytes(32)
  const nonce = randomBytes(24)
  const zero = new Uint8Array(64)
  const a = new XSalsa20(nonce, key).update(zero)
  const nonce2 = Buffer.from(nonce); nonce2[23] ^= 1
  const key2 = Buffer.from(key); key2[0] ^= 1
  t.notDeepEqual(new XSalsa20(nonce2, key).update(zero), a)
  t.notDeepEqual(new XSalsa20(nonce, key2).update(zero), a)
  t.throws(() => new XSalsa20(randomBytes(8), key), { instanceOf: RangeError })
  t.throws(() => new XSalsa20(nonce, randomBytes(16)), { instanceOf: RangeError })
})

test('past 256 GiB one way the key stream is used up: a typed error, never a wrapped counter', t => {
  const key = randomBytes(32)
  const nonce = randomBytes(24)
  const near = new XSalsa20(nonce, key, XSALSA20_MAX_BYTES - 10)
  t.is(near.update(new Uint8Array(10)).byteLength, 10)
  t.throws(() => near.update(new Uint8Array(1)), { instanceOf: KeyStreamExhaustedError })
  t.throws(() => new XSalsa20(nonce, key, XSALSA20_MAX_BYTES - 10).update(new Uint8Array(11)), { instanceOf: KeyStreamExhaustedError })
})
