/**
 * What the HTTP API sends, as the server builds it and the client reads it. Derived from the
 * node and replication methods the routes call; JSON drops undefined fields, hence the `?`s.
 */
import type { VolumeRecord, WriteMode } from '../core/records.js'
import type { SnapshotRecord, GcResult as StoreGcResult, LocalChanges } from '../store/store.js'
import type { FileView } from '../replication/volume-service.js'
import type { PeerView } from '../replication/peer-manager.js'
import type { ThrottledPeer } from '../replication/peer-limits.js'
import type { AnnounceResult, MemberLag, MemberView } from '../replication/sync-engine.js'
import type { DecisionView, ChangeView, PromiseView, CompletedChange } from '../replication/membership.js'
import type { MemberAnswer } from '../replication/quorum.js'
import type { CopyProgress } from '../replication/background-copy.js'
import type { FetchCounters } from '../replication/chunk-fetcher.js'
import type { ServedView } from '../replication/served-bytes.js'
import type { RestoreResult } from '../replication/dump.js'
import type { LinkShape } from '../replication/link-faults.js'
import type { ErrorCode } from '../core/errors.js'
import type { VolumeRefusal } from '../replication/volume-acceptance.js'

export type { VolumeRefusal }
export type { VolumeRecord, WriteMode, SnapshotRecord, LocalChanges, FileView, PeerView, AnnounceResult, MemberLag, MemberView, DecisionView, ChangeView, CopyProgress, FetchCounters, RestoreResult, LinkShape }

/** Every error answer: `{ "error": ... }` with the status of api/error-status.ts. */
export interface ErrorBody { error: { code: ErrorCode, message: string, details?: Record<string, unknown> } }

/** Bytes of chunk pack files and of the index database on disk. */
export interface DiskUsage { packBytes: number, indexBytes: number }

/** What this node still lacks of a volume, and why it refused a peer. */
export interface Lacking { files: number, bytes: number, refused: string | null }

/** GET /v1/volumes/:name (and each of status's volumes). */
export type VolumeInfo = Omit<VolumeRecord, 'state' | 'readers'> & {
  /** steady, copy, merge, minicopy, offline, removed: this node's state, live. */
  state: string
  /** Peers granted read access (not members). */
  readers: string[]
  /** How this node holds the volume: a member, a reader (granted read access; it cannot write), or none (removed or revoked). */
  access: 'member' | 'reader' | 'none'
  files: number
  bytes: number
  progress: CopyProgress | null
  /** Chunks the last merge found missing or corrupt (dropped, to fetch again). */
  damagedChunks: number
  /** Live files that referenced one of them. */
  damagedFiles: number
  repairing: boolean
  /** Present while repairing. */
  repair?: CopyProgress | null
  /** `neverSeen`: a member that has not connected to this node within `start --never-seen-after`. */
  memberStates: Array<MemberView & { neverSeen: boolean }>
  decisions: DecisionView[]
  /** Recent membership changes accepted or refused here, with who proposed them. */
  membershipChanges: ChangeView[]
  lacking: Lacking
  /**
   * This node holds everything its members have: steady, nothing lacking, and caught up with
   * every connected member (at least one reached, unless it is the only member).
   */
  caughtUp: boolean
  /** All-mode writes prepared here past their expiry whose decision nobody reachable knows yet. */
  inDoubt: InDoubt
  /**
   * This node's promise of the next generation to a proposed change (docs/CONSISTENCY.md):
   * `state` live, or in-doubt (not confirmed in time: kept until that generation's outcome is
   * known); null: none.
   */
  generationPromise: PromiseView | null
  /**
   * Local changes (new seqs) since this node started, by cause: write, delete, remoteApply,
   * resolution, conflictCopy, restore. Resolutions and copies far above the writes, or still
   * growing with no writes, are churn.
   */
  localChanges: LocalChanges
}

export interface InDoubt { count: number, txIds: string[] }

/** Chunk traffic this node received since start (all fetches; on-demand and copy are subsets). */
export type FetchedCounters = FetchCounters & {
  onDemand: FetchCounters & { joined: number, cancelled: number, reads: number }
  copy: FetchCounters
  /** Chunk bytes received from each holder, by peer id (replication/holder-choice.ts spreads them). */
  from?: Record<string, number>
}

/** GET /v1/status */
export interface StatusResponse {
  version: string
  peerId: string
  multiaddrs: string[]
  /** Absent when the node runs without an HTTP API (then nobody asks). */
  api?: string
  dataDir: string
  uptimeMs: number
  uncleanShutdown: string[]
  /** In a private swarm (`start --swarm-key`): only peers with the same key connect. */
  privateSwarm: boolean
  /** 16 hex digits naming the swarm key (never the key): nodes of one swarm show the same. */
  swarmKeyFingerprint?: string
  peers: PeerView[]
  disk: DiskUsage
  fetched: FetchedCounters
  /** Chunk bytes, chunks and distinct requesters this node served as a holder since start, by volume. */
  served?: Record<string, ServedView>
  volumes: VolumeInfo[]
  /** New volumes this node refused (`--accept-volumes`), newest last, at most 32. */
  volumeRefusals?: VolumeRefusal[]
  /** Peers refused for going past their limits (THROTTLED) or banned for it, newest first, at most 64. */
  throttledPeers?: ThrottledPeer[]
  /** Sizes of what the node holds in memory per chunk or peer (each bounded). */
  memory?: MemoryUse
}

/**
 * Young chunks kept from GC, notice entries (member states and heads), peer records stored,
 * strangers remembered in memory, peers whose limits are tracked, bans held.
 */
export interface MemoryUse { youngChunks: number, notices: number, knownPeers: number, strangers?: number, limitedPeers?: number, bannedPeers?: number }

export interface PeerList { peers: PeerView[] }
export interface VolumeList { volumes: VolumeRecord[] }
export interface FileList { files: FileView[] }
export interface SnapshotList { snapshots: SnapshotRecord[] }

/** POST /v1/volumes: `replicas` lists the other members' peer ids (`self` allowed). */
export interface CreateVolumeRequest { name: string, writeMode?: WriteMode, chunkSize?: number, replicas?: string[] }

/**
 * A volume after a change told to its members: create, add/remove replica, set write mode.
 * `promises`: each member's answer to the change's promise request; `warning`: the change was
 * forced without a majority (docs/CONSISTENCY.md); `completed`: the next generation was settled
 * first (a change in doubt completed, or a member's adopted) and this change made after it.
 */
export type AnnouncedVolume = VolumeRecord & { announce: AnnounceResult[], promises?: MemberAnswer[], warning?: string, completed?: CompletedChange[] }
export type { MemberAnswer }
export type AddReplicaResult = AnnouncedVolume
export type RemoveReplicaResult = AnnouncedVolume

/** DELETE /v1/volumes/:name: what was deleted of a replica this node no longer is a member of. */
export interface VolumeDropped { name: string, id: string, files: number, bytes: number, snapshots: number, versions: number, prepared: number, refs: number }

/** POST /v1/volumes/:name/compact */
/** `neverSeen`: members left out of the safe point, never having connected (never-seen.ts). */
export interface CompactResult { purged: number, floor: number, safeUpto: number, neverSeen: string[] }

export type MovePhase = 'adding' | 'copying' | 'removing' | 'done' | 'abandoned'

/** One NDJSON progress line of POST /v1/volumes/:name/move. */
export interface MoveProgress {
  phase: MovePhase
  volume: string
  from: string
  to: string
  /** copying: the new member's own state, as it reports it ('unreachable' when it does not answer). */
  state?: string
  /** copying: the new member's copy progress (bytesDone, bytesTotal, filesDone, filesTotal, ...). */
  progress?: Record<string, number | null> | null
  /** abandoned: the member removed, or null when there was nothing to remove. */
  removed?: string | null
}

/** The last NDJSON line of a move that finished. */
export type MoveResult = VolumeRecord & { phase: 'done' | 'abandoned', announce?: { added: AnnounceResult[], removed: AnnounceResult[] } }

/** POST /v1/gc: chunk GC (scanned/deleted/kept), the repack after it, the time taken and the disk after. */
export type GcResult = StoreGcResult & { ms: number, disk: DiskUsage }

/** POST /v1/volumes/:name/snapshots (nothing is copied: recordsCopied is always 0). */
export type SnapshotCreated = SnapshotRecord & { recordsCopied: number }
/** DELETE /v1/volumes/:name/snapshots/:snap */
export interface SnapshotDeleted { name: string, versionsReleased: number }

/** DELETE /v1/volumes/:name/files/:path */
export interface FileRemoved { path: string, deleted: true, seq: number, version: Record<string, number> }

/** Fault injection (nodes started for testing only). */
export interface BlockedList { blocked: string[] }
export interface LinkList { links: Record<string, LinkShape> }
/** Crash points armed on this node, with the passes each still lets through (core/crash-points.ts). */
export interface CrashList { crashes: Record<string, number> }
export type FaultsResponse = BlockedList & LinkList & CrashList

export type { Conflict, ConflictList, ConflictVersion, ResolveResult, KeepChoice } from '../replication/conflicts.js'
export type { NodeEvent, NodeEventKind } from '../core/events.js'
