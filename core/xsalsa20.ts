/**
 * XSalsa20 (Bernstein, "Extending the Salsa20 nonce"), the stream cipher of libp2p's private
 * network PSK v1 (what kubo and @libp2p/pnet speak). Plain TypeScript on 32-bit words, one
 * cipher per direction of a connection, no shared state: @libp2p/pnet 3.0.27 runs it in a WASM
 * module whose memory is shared by every connection of the process and never given back (see
 * node/psk-protector.ts). Tested byte for byte against that implementation.
 */

const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] // "expand 32-byte k"

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
  private readonly block = new Uint8Array(64)
  private readonly x = new Uint32Array(16)
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

  private nextBlock (): void {
    const x = this.x
    x.set(this.input)
    rounds(x)
    const view = new DataView(this.block.buffer)
    for (let i = 0; i < 16; i++) view.setUint32(4 * i, (x[i] + this.input[i]) >>> 0, true)
    // 64-bit little-endian block counter in words 8 and 9.
    this.input[8] = (this.input[8] + 1) >>> 0
    if (this.input[8] === 0) this.input[9] = (this.input[9] + 1) >>> 0
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
    this.input.fill(0); this.block.fill(0); this.x.fill(0)
    this.used = 64
  }
}
