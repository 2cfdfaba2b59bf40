/**
 * XSalsa20 as a running key stream: the cipher of libp2p's private network PSK v1 (what kubo
 * and @libp2p/pnet speak), one per direction of a connection, no shared state. The block
 * function is @noble/ciphers' (audited, pure JS, already in the tree through noise); this only
 * keeps the stream's position between calls. @libp2p/pnet 3.0.27's own cipher runs in a WASM
 * memory shared by every connection of the process and never given back (see
 * node/psk-protector.ts). Tested byte for byte against that implementation.
 */
import { xsalsa20 } from '@noble/ciphers/salsa.js'

/** noble's block counter stops below 2^32 (it never wraps): 2^32 - 1 blocks of 64 bytes (256 GiB) per direction of one connection. */
export const XSALSA20_MAX_BYTES = (2 ** 32 - 1) * 64

export class KeyStreamExhaustedError extends RangeError {
  constructor () { super('private swarm: 256 GiB sent one way on this connection, the PSK v1 key stream is used up; the connection is closed and redialled') }
}

export class XSalsa20 {
  private readonly key: Uint8Array
  private readonly nonce: Uint8Array
  /** Bytes of key stream used so far. */
  private pos = 0

  /** `position`: key stream bytes already used (0 for a connection; tests start near the end). */
  constructor (nonce: Uint8Array, key: Uint8Array, position = 0) {
    if (nonce.byteLength !== 24) throw new RangeError('XSalsa20 takes a 24-byte nonce')
    if (key.byteLength !== 32) throw new RangeError('XSalsa20 takes a 32-byte key')
    this.key = Uint8Array.from(key)
    this.nonce = Uint8Array.from(nonce)
    this.pos = position
  }

  /** XORs `data` with the next bytes of the key stream into a new array; the stream goes on where it left off. */
  update (data: Uint8Array): Uint8Array {
    if (this.pos + data.byteLength > XSALSA20_MAX_BYTES) throw new KeyStreamExhaustedError()
    const skip = this.pos % 64
    const counter = (this.pos - skip) / 64
    this.pos += data.byteLength
    if (skip === 0) return xsalsa20(this.key, this.nonce, data, undefined, counter)
    // Mid-block: cipher from the block's start and drop the key stream bytes already used.
    const padded = new Uint8Array(skip + data.byteLength)
    padded.set(data, skip)
    return xsalsa20(this.key, this.nonce, padded, undefined, counter).subarray(skip)
  }

  /** Forgets the key material (the connection is over). */
  wipe (): void {
    this.key.fill(0)
    this.nonce.fill(0)
  }
}
