import { createHash } from 'node:crypto'
import { compare, merge, toKey, type VersionVector } from '../core/version-vector.js'
import type { NewFileRecord } from '../store/store.js'
import type { FileRecord } from '../core/records.js'

/**
 * What to do with a file record that arrives from a peer, given the local one. Pure, so
 * every member reaches the same result from the same pair, in either order:
 *
 * - incoming older or equal: keep local (skip);
 * - incoming newer (vector greater), or nothing local: take it;
 * - concurrent: a conflict, resolved deterministically and never by dropping a write.
 *   A live version beats a tombstone. Between two live versions the later mtime wins (then
 *   the larger vector key); the loser is kept as a conflict copy whose path and vector are
 *   derived from the loser alone, so every member creates the identical copy. The winner
 *   gets the merged vector plus a resolution entry (below), so it dominates both sides and
 *   the conflict is not re-raised.
 *
 * Why the resolution entry: a merged vector alone does not name the pair it came from. A
 * member holding A meets a concurrent delete D and keeps A under merge(A, D); another member
 * holding W (A's successor by an earlier conflict) meets the same D and keeps W under
 * merge(W, D), the same vector: two contents under one vector, which never converge (found by
 * a chaos run). The entry `~<hash of the two vectors>: 1` makes every resolution's vector
 * unique to its pair, while every member resolving that pair still makes the identical one.
 */
export type Decision =
  | { kind: 'skip' }
  | { kind: 'apply', record: NewFileRecord }
  | { kind: 'conflict', records: NewFileRecord[], copyPath?: string }

export function strip (rec: FileRecord): NewFileRecord {
  // The change-log seq is this node's own numbering: it never travels.
  const { seq, ...rest } = rec
  void seq
  return rest
}

function sameContent (a: FileRecord, b: FileRecord): boolean {
  return a.deleted === b.deleted && a.size === b.size && Buffer.compare(a.chunks, b.chunks) === 0
}

/** Deterministic order between two concurrent live versions: > 0 when `a` wins. */
function rank (a: FileRecord, b: FileRecord): number {
  if (a.mtime !== b.mtime) return a.mtime - b.mtime
  const ka = toKey(a.vv)
  const kb = toKey(b.vv)
  return ka < kb ? -1 : ka > kb ? 1 : Buffer.compare(a.chunks, b.chunks)
}

/** `/dir/name.ext` -> `/dir/name.conflict-<8 hex of the loser's vector>.ext` */
export function conflictPath (path: string, loser: FileRecord): string {
  const tag = createHash('sha256').update(toKey(loser.vv)).digest('hex').slice(0, 8)
  const slash = path.lastIndexOf('/')
  const base = path.slice(slash + 1)
  const dot = base.lastIndexOf('.')
  const name = dot > 0 ? `${base.slice(0, dot)}.conflict-${tag}${base.slice(dot)}` : `${base}.conflict-${tag}`
  return path.slice(0, slash + 1) + name
}

/** The vector of a resolved conflict: both sides merged, and an entry naming the pair. */
export function resolvedVector (a: VersionVector, b: VersionVector): VersionVector {
  const [x, y] = [toKey(a), toKey(b)].sort()
  const key = `${RESOLUTION_PREFIX}${createHash('sha256').update(`${x}|${y}`).digest('hex').slice(0, 16)}`
  return merge(merge(a, b), { [key]: 1 })
}

/** Vector entries of resolutions start with this (peer ids never do). */
export const RESOLUTION_PREFIX = '~'

export function decide (local: FileRecord | undefined, incoming: FileRecord): Decision {
  if (local === undefined) return { kind: 'apply', record: strip(incoming) }
  const order = compare(incoming.vv, local.vv)
  if (order === 'equal' || order === 'lesser') return { kind: 'skip' }
  if (order === 'greater') return { kind: 'apply', record: strip(incoming) }
  const vv = resolvedVector(local.vv, incoming.vv)
  // Which side's metadata (mode, mtime) is kept is decided by rank, not by who decides: two
  // members keeping their own under one vector would differ forever.
  if (sameContent(local, incoming)) return { kind: 'conflict', records: [{ ...strip(rank(incoming, local) > 0 ? incoming : local), vv }] }
  if (local.deleted !== incoming.deleted) {
    const live = local.deleted ? incoming : local
    return { kind: 'conflict', records: [{ ...strip(live), vv }] }
  }
  if (local.deleted && incoming.deleted) return { kind: 'conflict', records: [{ ...strip(rank(incoming, local) > 0 ? incoming : local), vv }] }
  const [winner, loser] = rank(incoming, local) > 0 ? [incoming, local] : [local, incoming]
  const copyPath = conflictPath(winner.path, loser)
  return {
    kind: 'conflict',
    copyPath,
    records: [{ ...strip(loser), path: copyPath }, { ...strip(winner), vv }]
  }
}
