/**
 * The private swarm's connection protector: libp2p PSK v1, the wire protocol of kubo's
 * swarm.key and of @libp2p/pnet. Each side sends a random 24-byte nonce, then every byte each
 * way is XORed with XSalsa20(its sender's nonce, the key); noise runs inside. A peer with
 * another key, or none, decodes garbage and its handshake fails.
 *
 * Why not @libp2p/pnet's own protector: in 3.0.27 (the latest release here) its XSalsa20 runs
 * in one WASM memory per process that it never gives back (two 64-byte slots per connection,
 * for any TCP client that sends 24 bytes) and grows for large messages, which detaches every
 * other connection's view of it. Measured here: after ~6,000 connections from strangers
 * without the key a node refused its own members ("offset is out of bounds"), and three
 * in-process nodes replicating 64 MiB crashed ("WebAssembly.Memory.grow(): Maximum memory size
 * exceeded"). libp2p/js-libp2p#3585 fixes both, unreleased. This keeps no shared state: each
 * connection holds its two ciphers and drops them with itself. Interoperability with pnet is
 * tested (test/private-swarm.test.ts).
 */
import { randomBytes } from 'node:crypto'
import { AbstractMultiaddrConnection, byteStream, type SendResult } from '@libp2p/utils'
import type { AbortOptions, ConnectionProtector, MessageStream, MultiaddrConnection } from '@libp2p/interface'
import { XSalsa20 } from '../core/xsalsa20.js'

export const PSK_NONCE_BYTES = 24
/** The nonce exchange must finish within this when libp2p gives no signal (it gives its upgrade timeout). */
const NONCE_TIMEOUT_MS = 10_000

export class PskProtector implements ConnectionProtector {
  readonly [Symbol.toStringTag] = 'replicant/psk-protector'

  constructor (private readonly key: Uint8Array) {
    if (key.byteLength !== 32) throw new RangeError('a swarm key is 32 bytes')
  }

  async protect (connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const maConn = connection as MultiaddrConnection
    const signal = options?.signal ?? AbortSignal.timeout(NONCE_TIMEOUT_MS)
    const bytes = byteStream(maConn)
    const localNonce = randomBytes(PSK_NONCE_BYTES)
    const [remote] = await Promise.all([bytes.read({ bytes: PSK_NONCE_BYTES, signal }), bytes.write(localNonce, { signal })])
    return new PskConnection(bytes.unwrap(), new XSalsa20(localNonce, this.key), new XSalsa20(remote.subarray(), this.key))
  }
}

/** The raw connection seen through the two ciphers. */
class PskConnection extends AbstractMultiaddrConnection {
  constructor (private readonly maConn: MultiaddrConnection, private readonly outbound: XSalsa20, private readonly inbound: XSalsa20) {
    super({ log: maConn.log.newScope('psk'), remoteAddr: maConn.remoteAddr, direction: maConn.direction })
    maConn.addEventListener('message', (evt) => {
      const data = evt.data
      try {
        if (data instanceof Uint8Array) this.onData(this.inbound.update(data))
        else for (const buf of data) this.onData(this.inbound.update(buf))
      } catch (err) {
        // The key stream is used up (core/xsalsa20.ts): this connection ends, the node redials.
        this.abort(err as Error)
      }
    })
    maConn.addEventListener('drain', () => { this.onMuxerDrain() })
    maConn.addEventListener('close', (evt) => {
      if (evt.error === undefined) this.onTransportClosed()
      else if (evt.local) this.abort(evt.error)
      else this.onRemoteReset()
      this.inbound.wipe()
      this.outbound.wipe()
    })
  }

  async sendClose (options?: AbortOptions): Promise<void> { await this.maConn.close(options) }

  sendData (data: Parameters<AbstractMultiaddrConnection['sendData']>[0]): SendResult {
    let sealed: Uint8Array
    try {
      sealed = this.outbound.update(data.subarray())
    } catch (err) {
      this.abort(err as Error)
      return { sentBytes: data.byteLength, canSendMore: false }
    }
    return { sentBytes: data.byteLength, canSendMore: this.maConn.send(sealed) }
  }

  sendReset (err: Error): void { this.maConn.abort(err) }
  sendPause (): void { this.maConn.pause() }
  sendResume (): void { this.maConn.resume() }
}

/** libp2p's `connectionProtector` option: a factory of the protector. */
export function pskProtector (key: Uint8Array): () => ConnectionProtector {
  return () => new PskProtector(key)
}
