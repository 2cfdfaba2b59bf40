import type { VersionVector } from './version-vector.js'

export type WriteMode = 'all' | 'active'

/**
 * This node's state as a member of a volume: `steady` holds every chunk of the index it knows;
 * `copy` (a "wannabe") holds the index and serves reads, fetching missing chunks on demand,
 * while a background copy fills it in.
 */
export type MemberStateName = 'steady' | 'copy' | 'merge' | 'removed'
export const MEMBER_STATES: readonly MemberStateName[] = ['steady', 'copy', 'merge', 'removed']

/** One earlier generation of a volume's replica set. */
export interface GenerationEntry { generation: number, genId: string }
/** Generations of history kept per volume. */
export const HISTORY_LENGTH = 16
export const WRITE_MODES: readonly WriteMode[] = ['all', 'active']

/** Schema version of the records below; bumped when a field changes meaning. */
export const RECORD_VERSION = 1

export const HASH_BYTES = 32

export interface VolumeRecord {
  v: number
  name: string
  /** 128-bit random id fixed at creation, hex. A replica with another id is foreign. */
  id: string
  generation: number
  /** Peer ids of the replica set, sorted. */
  members: string[]
  /**
   * Peers granted read access (sorted; absent: none): they may fetch the index and chunks but
   * are not members (no vote, not waited for, not a source). Part of the configuration.
   */
  readers?: string[]
  writeMode: WriteMode
  chunkSize: number
  createdAt: number
  /** The last local change-log sequence number of this volume on this node. */
  seq: number
  /** Set before the first write after open, cleared on clean close: found set at start = crash. */
  dirty: boolean
  /** This node's member state of the volume (absent in records written before it existed: steady). */
  state?: MemberStateName
  /** Set while `removed`: the state it was removed from when it did not yet hold everything (copy, merge), resumed on return. */
  removedFrom?: 'copy' | 'merge'
  /** Random id of the current generation (absent: derived from id and generation). */
  genId?: string
  /** Earlier generations, oldest first, at most HISTORY_LENGTH. */
  history?: GenerationEntry[]
  /** The lowest seq from which this node's "changes since N" is complete (raised by log compaction). */
  logFloor?: number
}

/** At most this many readers per volume (the list travels in every descriptor). */
export const MAX_READERS = 256

export function readersOf (vol: Pick<VolumeRecord, 'readers'>): readonly string[] {
  return vol.readers ?? []
}

/** Whether `peer` holds `vol` as a member or as a reader. */
export function holds (vol: Pick<VolumeRecord, 'members' | 'readers'>, peer: string): boolean {
  return vol.members.includes(peer) || readersOf(vol).includes(peer)
}

/** `vol` with `readers` as its reader list (the field left out when there is none). */
export function withReaders<T extends Pick<VolumeRecord, 'readers'>> (vol: T, readers: readonly string[] | undefined): T {
  const rest = { ...vol }
  delete rest.readers
  return (readers !== undefined && readers.length > 0 ? { ...rest, readers: [...new Set(readers)].sort() } : rest)
}

export function genIdOf (vol: Pick<VolumeRecord, 'id' | 'generation' | 'genId'>): string {
  return vol.genId ?? `${vol.id.slice(0, 16)}-${vol.generation}`
}

/** Merges generation histories, dropping duplicates and the current one, keeping the newest. */
export function mergeHistory (current: GenerationEntry, ...lists: Array<GenerationEntry[] | undefined>): GenerationEntry[] {
  const byId = new Map<string, GenerationEntry>()
  for (const list of lists) for (const e of list ?? []) byId.set(e.genId, e)
  byId.delete(current.genId)
  return [...byId.values()].sort((a, b) => a.generation - b.generation).slice(-HISTORY_LENGTH)
}

export interface FileRecord {
  v: number
  path: string
  size: number
  mode: number
  mtime: number
  /** Every chunk but the last holds exactly chunkSize bytes. */
  chunkSize: number
  /** Concatenated sha256 hashes of the chunks, HASH_BYTES each. */
  chunks: Uint8Array
  vv: VersionVector
  deleted: boolean
  /** Local change-log sequence number of the last change to this path on this node. */
  seq: number
}

/**
 * A folder marker: a record whose mode has the POSIX S_IFDIR bit, size 0, no chunks. Folders
 * are implicit in the flat map of paths (`/a` exists while `/a/...` does); a marker keeps one
 * that has nothing under it (WebDAV MKCOL). It is a record like any other: it replicates,
 * reconciles, conflicts and is deleted by a tombstone like a file. The HTTP API's write route
 * never makes one (its mode is at most 0o7777).
 */
export const FOLDER_MODE = 0o040000

export function isFolderMarker (rec: Pick<FileRecord, 'mode'>): boolean {
  return (rec.mode & FOLDER_MODE) !== 0
}

/** A file record before the store assigns its change-log sequence number. */
export type NewFileRecord = Omit<FileRecord, 'seq'>

export interface PeerRecord {
  peerId: string
  addrs: string[]
  lastSeen: number
}

export function chunkCount (rec: Pick<FileRecord, 'chunks'>): number {
  return rec.chunks.byteLength / HASH_BYTES
}

export function chunkHash (rec: Pick<FileRecord, 'chunks'>, index: number): Uint8Array {
  return rec.chunks.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES)
}

export function * chunkHashes (rec: Pick<FileRecord, 'chunks'>): Generator<Uint8Array> {
  const n = chunkCount(rec)
  for (let i = 0; i < n; i++) yield chunkHash(rec, i)
}

/** Size in bytes of chunk `index` of a file (the last one may be short). */
export function chunkLength (rec: Pick<FileRecord, 'size' | 'chunkSize'>, index: number): number {
  const start = index * rec.chunkSize
  return Math.max(0, Math.min(rec.chunkSize, rec.size - start))
}
