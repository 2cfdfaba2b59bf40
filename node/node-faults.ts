import { LinkFaults } from '../replication/link-faults.js'
import type { PeerManager } from '../replication/peer-manager.js'
import { readersOf, type VolumeRecord } from '../core/records.js'

export interface NodeFaults {
  crashAfterPrepare?: boolean
  crashAfterDecision?: boolean
  /** Chunks served to peers are replaced by random bytes (peers must reject them). */
  serveCorruptChunks?: boolean
  /**
   * The next membership change committed here is followed at once by a partition from every
   * other member and reader, before its announce (a proposer cut off between its commit and
   * its announce); disarmed once used. Unblock with peers.unblock() or POST /v1/faults/unblock.
   */
  cutAfterCommit?: boolean
  /** Slow or lossy links to chosen peers (POST /v1/faults/link). */
  links?: LinkFaults
}

/** The faults of a node started for testing: `opts.faults` over REPLICANT_FAULTS. */
export function faultsOf (faults: NodeFaults | undefined): NodeFaults {
  const env = (process.env.REPLICANT_FAULTS ?? '').split(',')
  return {
    crashAfterPrepare: env.includes('crash-after-prepare'),
    crashAfterDecision: env.includes('crash-after-decision'),
    serveCorruptChunks: env.includes('serve-corrupt-chunks'),
    ...faults,
    links: faults?.links ?? new LinkFaults()
  }
}

/** The cutAfterCommit fault: a partition from every other member and reader of `vol` and every peer connected, before its announce. */
export async function cutAfterCommit (faults: NodeFaults, peers: PeerManager, selfId: string, vol: VolumeRecord): Promise<void> {
  if (faults.cutAfterCommit !== true) return
  faults.cutAfterCommit = false
  await peers.block([...new Set([...vol.members, ...readersOf(vol), ...peers.connectedPeers()])].filter(p => p !== selfId))
}
