import { LinkFaults } from '../replication/link-faults.js'

export interface NodeFaults {
  crashAfterPrepare?: boolean
  crashAfterDecision?: boolean
  /** Chunks served to peers are replaced by random bytes (peers must reject them). */
  serveCorruptChunks?: boolean
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
