import type { Libp2p, PeerId } from '@libp2p/interface'
import { Framed, expect, noteBroken, type Message } from './framing.js'
import type { RequestGate } from './sources.js'
import { NOTIFY_PROTOCOL, WIRE_VERSION, MAX_SMALL_FRAME_BYTES, MAX_INBOUND_STREAMS, MAX_OUTBOUND_STREAMS } from './constants.js'
import { logger } from '../core/log.js'
import { ProtocolError, Codes } from '../core/errors.js'

const log = logger('proto:notify')

/** notify: "volume V is now at sequence N" — one message per stream, no reply. */
export interface Notice {
  volume: string
  volumeId: string
  seq: number
  /** The sender's member state of the volume (steady, copy, ...). */
  state?: string
  generation?: number
}

export async function registerNotifyHandler (libp2p: Libp2p, onNotice: (peer: string, notice: Notice) => void, gate?: RequestGate): Promise<void> {
  await libp2p.handle(NOTIFY_PROTOCOL, async (stream, connection) => {
    const framed = new Framed(stream, MAX_SMALL_FRAME_BYTES)
    try {
      await gate?.admit(connection.remotePeer.toString(), NOTIFY_PROTOCOL)
      const msg = expect<Message & { volume: unknown, volumeId: unknown, seq: unknown, state: unknown, generation: unknown }>(await framed.read(), 'notify')
      if (typeof msg.volume !== 'string' || typeof msg.volumeId !== 'string' || typeof msg.seq !== 'number' || !Number.isSafeInteger(msg.seq)) {
        throw new ProtocolError(Codes.BAD_MESSAGE, 'malformed notice')
      }
      await framed.close()
      // Membership is checked by whoever acts on the notice: it only ever triggers a pull.
      onNotice(connection.remotePeer.toString(), {
        volume: msg.volume,
        volumeId: msg.volumeId,
        seq: msg.seq,
        ...(typeof msg.state === 'string' && msg.state.length <= 32 ? { state: msg.state } : {}),
        ...(typeof msg.generation === 'number' && Number.isSafeInteger(msg.generation) ? { generation: msg.generation } : {})
      })
    } catch (err) {
      log('bad notice from %p: %s', connection.remotePeer, (err as Error).message)
      noteBroken(gate, connection.remotePeer.toString(), err)
      framed.abort(err as Error)
    }
  }, { maxInboundStreams: MAX_INBOUND_STREAMS, maxOutboundStreams: MAX_OUTBOUND_STREAMS })
}

export async function sendNotice (libp2p: Libp2p, peer: PeerId, notice: Notice, signal?: AbortSignal): Promise<void> {
  const stream = await libp2p.dialProtocol(peer, NOTIFY_PROTOCOL, { signal })
  const framed = new Framed(stream, MAX_SMALL_FRAME_BYTES)
  await framed.write({ v: WIRE_VERSION, t: 'notify', ...notice }, { signal })
  await framed.close()
}
