import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { pskProtector } from './psk-protector.js'
import type { PrivateKey, ConnectionGater, PeerId, Metrics, ComponentLogger } from '@libp2p/interface'

/** Connection limits of a node (`start --max-connections`, `--inbound-rate`); libp2p's defaults otherwise. */
export interface ConnectionLimits {
  /** Connections kept open at most (libp2p's default 300); past it libp2p closes the least valued. */
  maxConnections?: number
  /** New inbound connections a second from one host (libp2p's default 5; a swarm on one machine needs more). */
  inboundRate?: number
}

export interface Libp2pOptions extends ConnectionLimits {
  privateKey: PrivateKey
  listen: string[]
  connectionGater?: ConnectionGater
  /** A private swarm's 32-byte key (core/swarm-key.ts): only peers holding it connect. */
  swarmKey?: Uint8Array
  /** libp2p's metrics (node/node-ops.ts createMetrics: @libp2p/prometheus-metrics on the node's registry). */
  metrics?: (components: { logger: ComponentLogger }) => Metrics
}

/** A gater that refuses, in both directions, every peer in `blocked` (a mutable set, or any live predicate of that shape). */
export function blockingGater (blocked: { has: (peer: string) => boolean }): ConnectionGater {
  const deny = (peerId: PeerId): boolean => blocked.has(peerId.toString())
  return {
    denyDialPeer: deny,
    denyInboundEncryptedConnection: deny,
    denyOutboundEncryptedConnection: deny
  }
}

/** TCP (+ pnet in a private swarm) + noise + yamux, with identify and ping: every connection is encrypted and authenticated. */
export async function createReplicantLibp2p (opts: Libp2pOptions): Promise<Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>, ping: ReturnType<ReturnType<typeof ping>> }>> {
  return await createLibp2p({
    privateKey: opts.privateKey,
    addresses: { listen: opts.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    // A stream's first window covers one whole chunk reply (CHUNK_WANT_MAX x 64 KiB), so a
    // request does not wait on window updates; our own credits bound what is in flight.
    streamMuxers: [yamux({ streamOptions: { initialStreamWindowSize: 4 * 1024 * 1024, maxStreamWindowSize: 16 * 1024 * 1024 } })],
    services: { identify: identify(), ping: ping() },
    // A peer announcing many addresses cannot aim many dials at other hosts: at most 4 of a
    // peer's addresses are tried, and few dials run at once (replication/peer-manager.ts keeps
    // at most 4 per peer, and only for members and joined peers).
    connectionManager: {
      maxPeerAddrsToDial: 4, maxParallelDials: 16, maxDialQueueLength: 128,
      ...(opts.maxConnections !== undefined ? { maxConnections: opts.maxConnections } : {}),
      ...(opts.inboundRate !== undefined ? { inboundConnectionThreshold: opts.inboundRate, maxIncomingPendingConnections: Math.max(10, opts.inboundRate) } : {})
    },
    ...(opts.connectionGater !== undefined ? { connectionGater: opts.connectionGater } : {}),
    ...(opts.metrics !== undefined ? { metrics: opts.metrics } : {}),
    // PSK v1 wraps the raw TCP connection before noise (node/psk-protector.ts): a peer without the key never gets a handshake.
    ...(opts.swarmKey !== undefined ? { connectionProtector: pskProtector(opts.swarmKey) } : {})
  })
}
