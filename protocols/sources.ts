import type { FileRecord, VolumeRecord } from '../core/records.js'

/**
 * What the protocol handlers need from the layers above and beside them, declared here so
 * protocols/ imports only core/. The Store satisfies the two sources as it is; the membership
 * policy (replication/member-authorizer.ts) is the authorizer; replication's LinkFaults is the
 * reply shaper. Each declares only the methods a handler calls.
 */

/** What the index handler reads: a volume's head, its change log, and where a member asks from. */
export interface IndexSource {
  requireVolume: (name: string) => Promise<VolumeRecord>
  changesSince: (vol: string, afterSeq: number, options?: { batch?: number }) => AsyncIterable<FileRecord>
  /** A member asks from what it has applied: compaction may purge below the least of these. */
  noteApplied: (vol: string, peer: string, seq: number) => Promise<void>
  /** Whether this node's index of `vol` is complete (not a wannabe before its first full pull); absent: always. */
  indexComplete?: (vol: VolumeRecord) => boolean
}

/** What the chunk handler serves: chunk bytes, but only those a volume references or prepares. */
export interface ChunkSource {
  referencedIn: (volume: string, hashes: Uint8Array[]) => Promise<boolean[]>
  /** Hex hashes of the chunks of a volume's prepared all-mode writes. */
  preparedChunks: (vol: string) => Promise<ReadonlySet<string>>
  readonly chunks: { getMany: (hashes: Uint8Array[]) => Promise<Array<Uint8Array | undefined>> }
}

/**
 * Who may read a volume: resolves to the volume `remotePeer` may have, or throws
 * (VOLUME_NOT_FOUND, NOT_A_MEMBER, VOLUME_ID_MISMATCH). `volume` and `volumeId` are as the
 * request carried them, unchecked.
 */
export interface Authorizer {
  authorize: (volume: unknown, volumeId: unknown, remotePeer: string) => Promise<VolumeRecord>
  /**
   * Called once a stream is authorized: `abort` closes it at once if `remotePeer`'s access
   * is revoked while it is open. Returns the release, called when the stream ends.
   */
  watch?: (vol: VolumeRecord, remotePeer: string, abort: (err: Error) => void) => () => void
}

/** What a link does to this node's replies to one peer: waits as long as `bytes` take, or throws when they are lost. */
export interface ReplyShaper {
  pass: (peer: string, bytes: number) => Promise<void>
}

/**
 * Per-peer limits every handler passes a request through (replication/peer-limits.ts): a
 * peer over its rate is refused with THROTTLED (and, if it keeps on, disconnected and kept
 * out for a while). `reserve` bounds the reply bytes a handler holds for one peer at a time:
 * it waits for room, and resolves to the function that gives the bytes back.
 */
export interface RequestGate {
  admit: (peer: string, protocol: string) => Promise<void>
  reserve: (peer: string, bytes: number, signal?: AbortSignal) => Promise<() => void>
  /** A request that broke the protocol (bad frame, over-long want-list): counts toward a ban. */
  misbehaved: (peer: string, reason: string) => void
  /** Membership changed: these peers may matter now, so their next dry bucket asks again at once. */
  reconsider?: (peers: readonly string[]) => void
}
