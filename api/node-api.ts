/**
 * What the routes need from the node, one interface per resource. The server is built on
 * these, not on ReplicantNode: the node (a layer above) satisfies them structurally.
 */
import type { Store } from '../store/store.js'
import type { VolumeService } from '../replication/volume-service.js'
import type { PeerView } from '../replication/peer-manager.js'
import type { LinkFaults } from '../replication/link-faults.js'
import type { VolumeRecord } from '../core/records.js'
import type { NodeEvents } from '../core/events.js'
import type { ConflictList, ResolveResult } from '../replication/conflicts.js'
import type {
  AnnouncedVolume, CompactResult, GcResult, MoveProgress, MoveResult, StatusResponse, VolumeDropped, VolumeInfo
} from './types.js'

/** What a node method answers: the api/types.ts type its route sends as is. */
export type NodeAnswer<T> = T

/** A JSON request body, an object (api/validate.ts readJson). */
export type JsonObject = Record<string, unknown>

export interface StatusSource {
  status (): Promise<NodeAnswer<StatusResponse>>
  readonly peers: { list (): Promise<PeerView[]> }
}

export interface VolumeAdmin {
  listVolumes (): Promise<VolumeRecord[]>
  /** The node checks the body (name, writeMode, chunkSize, replicas; id and generation pass through to the store's checks). */
  createVolume (body: JsonObject): Promise<AnnouncedVolume>
  volumeInfo (name: string): Promise<NodeAnswer<VolumeInfo>>
  setWriteMode (volume: string, writeMode: unknown, opts?: { force?: unknown }): Promise<NodeAnswer<AnnouncedVolume>>
  compactLog (volume: string, body: { upto?: unknown }): Promise<CompactResult>
  /** Deletes a replica this node is no longer a member of (refused with STILL_A_MEMBER otherwise). */
  dropVolume (name: string): Promise<NodeAnswer<VolumeDropped>>
}

/** onProgress is called with each progress line the route sends (NDJSON). */
export interface MoveOptions { abandon?: boolean, force?: boolean, signal?: AbortSignal, onProgress?: (p: NodeAnswer<MoveProgress>) => void }

export interface MembershipAdmin {
  addReplica (volume: string, peerId: unknown, opts?: { force?: unknown }): Promise<NodeAnswer<AnnouncedVolume>>
  removeReplica (volume: string, peerId: unknown, opts?: { force?: unknown }): Promise<NodeAnswer<AnnouncedVolume>>
  /** Read access for a peer that is not a member (grants.ts); `access` is `read`, the only level. */
  grantReader (volume: string, peer: unknown, access?: unknown): Promise<NodeAnswer<AnnouncedVolume>>
  revokeReader (volume: string, peer: unknown): Promise<NodeAnswer<AnnouncedVolume>>
  moveVolume (volume: string, from: unknown, to: unknown, opts: MoveOptions): Promise<NodeAnswer<MoveResult>>
  acceptVolume (volume: string, from: unknown): Promise<{ volume: string, from: string, accepted: true }>
  readonly volumes: Pick<VolumeService, 'volume'>
}

export interface FileAccess {
  readonly volumes: Pick<VolumeService, 'volume' | 'stat' | 'statAt' | 'readFile' | 'putFile' | 'putFiles' | 'putBuffered' | 'batcher' | 'removeFile' | 'listFiles' | 'listFilesAt'>
  readonly store: Pick<Store, 'getSnapshot'>
}

/** WebDAV (api/dav/): files, folder markers, copies and moves that reuse chunks. */
export interface DavAccess {
  readonly volumes: Pick<VolumeService, 'volume' | 'stat' | 'readFile' | 'putFile' | 'listFiles' | 'writeTree'>
  readonly dataDir: string
}

export interface SnapshotAccess {
  readonly volumes: Pick<VolumeService, 'volume' | 'createSnapshot'>
  /** The whole store: dumps read it and restores write it. */
  readonly store: Store
  readonly peerId: string
  /** Restores spool their upload under DATA_DIR/tmp. */
  readonly dataDir: string
}

export interface GcAdmin {
  collectGarbage (body: { youngSeconds?: unknown, repack?: unknown }): Promise<NodeAnswer<GcResult>>
}

/** Fault injection: a partition is a set of blocked peers; links are delayed, capped or lossy. */
export interface FaultControls {
  readonly peers: { readonly blocked: ReadonlySet<string>, block (peers: string[]): Promise<void>, unblock (peers?: string[]): void }
  readonly links: Pick<LinkFaults, 'list' | 'set' | 'clear'>
}

/** The Prometheus text of this node's metrics (node/metrics.ts). */
export interface MetricsSource { metrics (): Promise<{ contentType: string, body: string }> }

/** The node's event stream (core/events.ts). */
export interface EventsSource { readonly events: NodeEvents, readonly peerId: string }

export interface ConflictAdmin {
  conflicts (volume: string): Promise<ConflictList>
  resolveConflict (volume: string, path: unknown, keep: unknown): Promise<ResolveResult>
}

/** The operator's view: metrics, events, conflicts (node/node-ops.ts). */
export interface OpsSource { readonly ops: MetricsSource & EventsSource & ConflictAdmin }

/** Everything the HTTP API serves: ReplicantNode is one. */
export type ApiNode = StatusSource & VolumeAdmin & MembershipAdmin & FileAccess & DavAccess & SnapshotAccess & GcAdmin & FaultControls & OpsSource
