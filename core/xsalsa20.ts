/**
 * XSalsa20 (Bernstein, "Extending the Salsa20 nonce"), the stream cipher of libp2p's private
 * network PSK v1 (what kubo and @libp2p/pnet speak). Plain TypeScript on 32-bit words, one
 * cipher per direction of a connection, no shared state: @libp2p/pnet 3.0.27 runs it in a WASM
 * module whose memory is shared by every connection of the process and never given back (see
 * node/psk-protector.ts). Tested byte for byte against that implementation.
 */

const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] // "expand 32-byte k"

// The key stream block is read as the bytes of a Uint32Array: right only on little-endian machines.
if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) throw new Error('core/xsalsa20.ts needs a little-endian machine')

const rotl = (v: number, n: number): number => (v << n) | (v >>> (32 - n))
const word = (b: Uint8Array, i: number): number => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0

/** 20 rounds (10 column + row double rounds) over `x` in place. */
function rounds (x: Uint32Array): void {
  for (let i = 0; i < 10; i++) {
    x[4] ^= rotl(x[0] + x[12], 7); x[8] ^= rotl(x[4] + x[0], 9); x[12] ^= rotl(x[8] + x[4], 13); x[0] ^= rotl(x[12] + x[8], 18)
    x[9] ^= rotl(x[5] + x[1], 7); x[13] ^= rotl(x[9] + x[5], 9); x[1] ^= rotl(x[13] + x[9], 13); x[5] ^= rotl(x[1] + x[13], 18)
    x[14] ^= rotl(x[10] + x[6], 7); x[2] ^= rotl(x[14] + x[10], 9); x[6] ^= rotl(x[2] + x[14], 13); x[10] ^= rotl(x[6] + x[2], 18)
    x[3] ^= rotl(x[15] + x[11], 7); x[7] ^= rotl(x[3] + x[15], 9); x[11] ^= rotl(x[7] + x[3], 13); x[15] ^= rotl(x[11] + x[7], 18)
    x[1] ^= rotl(x[0] + x[3], 7); x[2] ^= rotl(x[1] + x[0], 9); x[3] ^= rotl(x[2] + x[1], 13); x[0] ^= rotl(x[3] + x[2], 18)
    x[6] ^= rotl(x[5] + x[4], 7); x[7] ^= rotl(x[6] + x[5], 9); x[4] ^= rotl(x[7] + x[6], 13); x[5] ^= rotl(x[4] + x[7], 18)
    x[11] ^= rotl(x[10] + x[9], 7); x[8] ^= rotl(x[11] + x[10], 9); x[9] ^= rotl(x[8] + x[11], 13); x[10] ^= rotl(x[9] + x[8], 18)
    x[12] ^= rotl(x[15] + x[14], 7); x[13] ^= rotl(x[12] + x[15], 9); x[14] ^= rotl(x[13] + x[12], 13); x[15] ^= rotl(x[14] + x[13], 18)
  }
}

/** The Salsa20 input block: constants, a 32-byte key, 4 more words (nonce and counter, or HSalsa's 16-byte nonce). */
function setup (key: Uint8Array, middle: Uint8Array): Uint32Array {
  const s = new Uint32Array(16)
  s[0] = SIGMA[0]; s[5] = SIGMA[1]; s[10] = SIGMA[2]; s[15] = SIGMA[3]
  for (let i = 0; i < 4; i++) { s[1 + i] = word(key, 4 * i); s[11 + i] = word(key, 16 + 4 * i) }
  for (let i = 0; i < 4; i++) s[6 + i] = word(middle, 4 * i)
  return s
}

/** HSalsa20: the subkey for a 24-byte nonce's first 16 bytes. */
function hsalsa20 (key: Uint8Array, nonce16: Uint8Array): Uint8Array {
  const x = setup(key, nonce16)
  rounds(x)
  const out = new Uint8Array(32)
  const view = new DataView(out.buffer)
  const pick = [0, 5, 10, 15, 6, 7, 8, 9]
  for (let i = 0; i < 8; i++) view.setUint32(4 * i, x[pick[i]], true)
  return out
}

export class XSalsa20 {
  private readonly input: Uint32Array
  /** The current key stream block, as words and as the bytes they are on a little-endian machine. */
  private readonly words = new Uint32Array(16)
  private readonly block = new Uint8Array(this.words.buffer)
  /** Bytes of `block` already used (64: none left). */
  private used = 64

  constructor (nonce: Uint8Array, key: Uint8Array) {
    if (nonce.byteLength !== 24) throw new RangeError('XSalsa20 takes a 24-byte nonce')
    if (key.byteLength !== 32) throw new RangeError('XSalsa20 takes a 32-byte key')
    const sub = hsalsa20(key, nonce.subarray(0, 16))
    const middle = new Uint8Array(16)
    middle.set(nonce.subarray(16, 24)) // words 6-7: the nonce's last 8 bytes; 8-9: the block counter, from 0
    this.input = setup(sub, middle)
    sub.fill(0)
  }

  /** The next 64 key stream bytes into `block`: the rounds on locals (several times faster than on the array). */
  private nextBlock (): void {
    const j = this.input
    let x0 = j[0]; let x1 = j[1]; let x2 = j[2]; let x3 = j[3]; let x4 = j[4]; let x5 = j[5]; let x6 = j[6]; let x7 = j[7]
    let x8 = j[8]; let x9 = j[9]; let x10 = j[10]; let x11 = j[11]; let x12 = j[12]; let x13 = j[13]; let x14 = j[14]; let x15 = j[15]
    let u: number
    for (let i = 0; i < 10; i++) {
      u = x0 + x12; x4 ^= (u << 7) | (u >>> 25); u = x4 + x0; x8 ^= (u << 9) | (u >>> 23); u = x8 + x4; x12 ^= (u << 13) | (u >>> 19); u = x12 + x8; x0 ^= (u << 18) | (u >>> 14)
      u = x5 + x1; x9 ^= (u << 7) | (u >>> 25); u = x9 + x5; x13 ^= (u << 9) | (u >>> 23); u = x13 + x9; x1 ^= (u << 13) | (u >>> 19); u = x1 + x13; x5 ^= (u << 18) | (u >>> 14)
      u = x10 + x6; x14 ^= (u << 7) | (u >>> 25); u = x14 + x10; x2 ^= (u << 9) | (u >>> 23); u = x2 + x14; x6 ^= (u << 13) | (u >>> 19); u = x6 + x2; x10 ^= (u << 18) | (u >>> 14)
      u = x15 + x11; x3 ^= (u << 7) | (u >>> 25); u = x3 + x15; x7 ^= (u << 9) | (u >>> 23); u = x7 + x3; x11 ^= (u << 13) | (u >>> 19); u = x11 + x7; x15 ^= (u << 18) | (u >>> 14)
      u = x0 + x3; x1 ^= (u << 7) | (u >>> 25); u = x1 + x0; x2 ^= (u << 9) | (u >>> 23); u = x2 + x1; x3 ^= (u << 13) | (u >>> 19); u = x3 + x2; x0 ^= (u << 18) | (u >>> 14)
      u = x5 + x4; x6 ^= (u << 7) | (u >>> 25); u = x6 + x5; x7 ^= (u << 9) | (u >>> 23); u = x7 + x6; x4 ^= (u << 13) | (u >>> 19); u = x4 + x7; x5 ^= (u << 18) | (u >>> 14)
      u = x10 + x9; x11 ^= (u << 7) | (u >>> 25); u = x11 + x10; x8 ^= (u << 9) | (u >>> 23); u = x8 + x11; x9 ^= (u << 13) | (u >>> 19); u = x9 + x8; x10 ^= (u << 18) | (u >>> 14)
      u = x15 + x14; x12 ^= (u << 7) | (u >>> 25); u = x12 + x15; x13 ^= (u << 9) | (u >>> 23); u = x13 + x12; x14 ^= (u << 13) | (u >>> 19); u = x14 + x13; x15 ^= (u << 18) | (u >>> 14)
    }
    const w = this.words
    w[0] = x0 + j[0]; w[1] = x1 + j[1]; w[2] = x2 + j[2]; w[3] = x3 + j[3]; w[4] = x4 + j[4]; w[5] = x5 + j[5]; w[6] = x6 + j[6]; w[7] = x7 + j[7]
    w[8] = x8 + j[8]; w[9] = x9 + j[9]; w[10] = x10 + j[10]; w[11] = x11 + j[11]; w[12] = x12 + j[12]; w[13] = x13 + j[13]; w[14] = x14 + j[14]; w[15] = x15 + j[15]
    // 64-bit little-endian block counter in words 8 and 9.
    j[8] = (j[8] + 1) >>> 0
    if (j[8] === 0) j[9] = (j[9] + 1) >>> 0
    this.used = 0
  }

  /** XORs `data` with the next bytes of the key stream into a new array; the stream goes on where it left off. */
  update (data: Uint8Array): Uint8Array {
    const out = new Uint8Array(data.byteLength)
    let i = 0
    while (i < data.byteLength) {
      if (this.used === 64) this.nextBlock()
      const n = Math.min(64 - this.used, data.byteLength - i)
      for (let j = 0; j < n; j++) out[i + j] = data[i + j] ^ this.block[this.used + j]
      this.used += n
      i += n
    }
    return out
  }

  /** Forgets the key material (the connection is over). */
  wipe (): void {
    this.input.fill(0); this.words.fill(0)
    this.used = 64
  }
}
