import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { requestLocate } from '../protocols/control-protocol.js'
import { ReplicantError, Codes } from '../core/errors.js'
import type { Store } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'

/** How long a peer that is not known at once is looked for before it counts as never seen. */
export const SIGHTING_WAIT_MS = 2_000
const POLL_MS = 250
/** Looks made before giving up, however long they took: a stalled event loop must not eat the whole wait in one look. */
const MIN_LOOKS = SIGHTING_WAIT_MS / POLL_MS
const LOCATE_TIMEOUT_MS = 1_000

export interface SightingDeps {
  libp2p: Libp2p
  store: Pick<Store, 'getPeer'>
  peers: Pick<PeerManager, 'isConnected' | 'connectedPeers' | 'learn' | 'recentlySeen'>
}

/**
 * Whether this node has ever seen `peer`: connected now, remembered in the store (a member or
 * joined peer that identified, or whose addresses a member told us), a stranger that
 * identified within the last hour (memory only, peer-manager.ts), or located by asking the
 * connected peers. A peer that was started a moment ago may still be connecting (the join
 * races of tests and scripts), so one not known at once is looked for up to `waitMs`, and
 * at least every POLL_MS of it (a loaded process may stall longer than the wait between looks).
 */
export async function hasBeenSeen (d: SightingDeps, peer: string, waitMs = SIGHTING_WAIT_MS, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + waitMs
  for (let looks = 1; ; looks++) {
    if (d.peers.isConnected(peer) || d.peers.recentlySeen(peer)) return true
    const rec = await d.store.getPeer(peer)
    if (rec !== undefined && (rec.lastSeen > 0 || rec.addrs.length > 0)) return true
    for (const via of d.peers.connectedPeers()) {
      if (via === peer) return true
      const found = await requestLocate(d.libp2p, peerIdFromString(via), [peer], AbortSignal.timeout(LOCATE_TIMEOUT_MS)).catch((): Record<string, string[]> => ({}))
      if ((found[peer] ?? []).length > 0) {
        await d.peers.learn(peer, found[peer])
        return true
      }
    }
    if ((Date.now() >= deadline && looks >= Math.min(MIN_LOOKS, waitMs / POLL_MS)) || signal?.aborted === true) return false
    await new Promise(resolve => setTimeout(resolve, POLL_MS))
  }
}

/** Refuses a peer this node has never seen (most often a mistyped id) unless forced. */
export async function requireSeen (d: SightingDeps, peer: string, what: string, force: boolean): Promise<void> {
  if (force || await hasBeenSeen(d, peer)) return
  throw new ReplicantError(Codes.UNKNOWN_PEER,
    `${what}: peer ${peer} has never been seen by this node (not connected, never identified, and no connected peer knows its address): check the id for a typo; to add it anyway use --force (API: "force": true)`,
    { peerId: peer })
}
