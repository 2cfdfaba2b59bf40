/** The shapes a caller of Topology deals in: node specs, options, events, wait bounds. */
import type { ReplicantNode, NodeOptions } from '../node/replicant-node.js'
import type { ReplicantClient } from '../api/client.js'
import type { History } from './history.js'
import type { WriteMode } from '../core/records.js'

export type NodeKind = 'process' | 'in-process'

export interface NodeSpec {
  name: string
  /** Default: the topology's `kind` ('process'). */
  kind?: NodeKind
  /** libp2p TCP port on 127.0.0.1 (default 0: a free one, then kept across restarts). */
  port?: number
  /** HTTP API port on 127.0.0.1 (default 0: a free one at every start). */
  apiPort?: number
  /** A swarm.key file: the node is in that private swarm (`start --swarm-key`). */
  swarmKeyFile?: string
  /** In-process nodes: options over the topology's `nodeOptions`. */
  nodeOptions?: Partial<NodeOptions>
}

export interface TopologyOptions {
  /** A count (nodes n1..nN) or names / specs. */
  nodes: number | Array<string | NodeSpec>
  kind?: NodeKind
  /** Where data dirs (DIR/NAME) and logs (DIR/NAME.log) go. Default: a new temp dir. */
  dir?: string
  /** Keep `dir` at close (default: kept if given, removed if a temp dir). */
  keepDir?: boolean
  /**
   * How nodes find each other at first start (all start at once either way): 'mesh'
   * (default; every node joins every other, and start() waits until all are connected),
   * 'star' (every node joins the first), 'bootstrap' (every node is given only the first as
   * `--bootstrap`: it finds the rest by itself), 'none'.
   */
  connect?: 'star' | 'mesh' | 'none' | 'bootstrap'
  /** Options of in-process nodes (ReplicantNode.start) besides those the topology sets. */
  nodeOptions?: Partial<NodeOptions>
  /** The replicant binary (default: dist/bin/replicant.js next to this module). */
  bin?: string
  /** Extra Node.js flags for process nodes. */
  nodeArgs?: string[]
  /** Extra `replicant start` flags for process nodes, e.g. ['--pack-target', '262144']. */
  startArgs?: string[]
  env?: NodeJS.ProcessEnv
  /** Records every write and delete made through write()/remove(). */
  history?: History
  /** A node that has not answered its API by then has failed to start (default 60 s). */
  startTimeoutMs?: number
  /** A clean stop that takes longer is finished with SIGKILL and reported (default 30 s). */
  stopTimeoutMs?: number
  /** Called for every fault and lifecycle event. */
  onEvent?: (event: TopologyEvent) => void
}

export interface TopologyEvent { at: number, kind: string, node?: string, detail?: string }

export interface ExitInfo { code: number | null, signal: NodeJS.Signals | null, timedOut?: boolean }

export interface VolumeSpec {
  /** Member node names (default: every node). */
  members?: string[]
  writeMode?: WriteMode
  chunkSize?: number
  /** The node that creates it (default: the first member). */
  on?: string
}

export interface WaitOptions {
  /** Nodes to compare (default: every member of the volume). */
  nodes?: string[]
  /** Give up with a TIMEOUT error after this long (default: never; the caller bounds it). */
  timeoutMs?: number
  intervalMs?: number
}

/** What a caller sees of one node of a topology. */
export interface TopologyNode {
  readonly name: string
  readonly kind: NodeKind
  readonly dataDir: string
  /** The node's log (stdout and stderr of a process node). */
  readonly logFile: string
  readonly peerId: string
  readonly running: boolean
  /** The HTTP API of the running node (changes at every restart). */
  readonly apiUrl: string
  /** The token the running node's API requires (`Authorization: Bearer`). */
  readonly apiToken: string
  readonly multiaddrs: string[]
  readonly pid: number | undefined
  /** A client of the running node's HTTP API. */
  readonly client: ReplicantClient
  /** The ReplicantNode object of an in-process node while it runs. */
  readonly instance: ReplicantNode | undefined
  /** How the last run ended (process nodes). */
  readonly lastExit: ExitInfo | undefined
  logTail: (bytes?: number) => Promise<string>
}
