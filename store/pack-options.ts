// The pack store's sizes and options (pack-chunk-store.ts).
import type { PutObserver } from './chunk-store.js'

/** A pack is closed to appends once it reaches this size, and a new one started. */
export const PACK_TARGET_BYTES = 64 * 1024 * 1024
/** Live bytes and chunks a repack copies per batch (read, append, fsync, switch): bounds its memory and batch. */
export const REPACK_BATCH_BYTES = 4 * 1024 * 1024
export const REPACK_BATCH_CHUNKS = 4096
/** Locations held in memory until their bytes are synced; a putMany beyond this syncs first. */
export const MAX_PENDING_LOCATIONS = 16_384
/** An empty file named for the newest pack id ever started (empty: it adds no pack bytes). */
export const LAST_PACK = 'last-pack-'

/** Where a repack may be stopped by a test (kill -9): after the copy is synced, after the switch. */
export type RepackPoint = 'copied' | 'switched'

export interface PackStoreOptions {
  /** Size at which a pack is rolled (default PACK_TARGET_BYTES; tests use small packs). */
  targetBytes?: number
  /** Test hook only: awaited at each RepackPoint (a crash test pauses there and is killed). */
  repackHook?: (point: RepackPoint) => Promise<void>
  /** Told of every putMany before its bytes are written. */
  onPut?: PutObserver
  /** Testing only: record each pack's fsynced length (pack-synced.ts). */
  recordSynced?: boolean
}
