/**
 * Conflicts as an operator sees them (`replicant conflicts`, `replicant resolve`): a conflict
 * is a live conflict copy (`name.conflict-XXXXXXXX.ext`, reconcile.ts conflictPath) next to
 * the file it lost to. Resolving is ordinary replicated writes through the VolumeService, so
 * it follows the volume's write mode and reaches every member like any write:
 * - keep current: the copy (or every copy of the path) is deleted;
 * - keep other: the copy's bytes are written at the path (a new version over the current
 *   one), then the copy is deleted.
 */
import { InvalidInputError, NotFoundError, Codes } from '../core/errors.js'
import { normalizePath } from '../core/paths.js'
import type { FileRecord } from '../core/records.js'
import type { VolumeService } from './volume-service.js'

/** Conflicts listed at most per request (the scan itself streams). */
export const MAX_CONFLICTS_LISTED = 10_000

/** A conflict copy's path, as conflictPath makes it. */
const CONFLICT_COPY = /^(.*\/)([^/]*?)\.conflict-([0-9a-f]{8})(\.[^./]*)?$/

/** The path a conflict copy was made for, or undefined for an ordinary path. */
export function conflictOriginal (path: string): string | undefined {
  const m = CONFLICT_COPY.exec(path)
  return m === null ? undefined : `${m[1]}${m[2]}${m[4] ?? ''}`
}

export interface ConflictVersion {
  path: string
  size: number
  mtime: number
  deleted: boolean
  /**
   * Who wrote this version, as far as the vectors tell: for the current version the members
   * whose counters it has above the copy's; for the copy, the members whose counters it
   * shares with the current version and that did not write the current one. `writer` is the
   * one of them when there is exactly one, else null.
   */
  writer: string | null
  writers: string[]
  vector: Record<string, number>
}

export interface Conflict { path: string, current: ConflictVersion | null, other: ConflictVersion }

export interface ConflictList { volume: string, conflicts: Conflict[], truncated: boolean }

export type KeepChoice = 'current' | 'other'

export interface ResolveResult { volume: string, path: string, kept: KeepChoice, removed: string[], written: boolean }

function version (rec: FileRecord, writers: string[]): ConflictVersion {
  return { path: rec.path, size: rec.size, mtime: rec.mtime, deleted: rec.deleted, writer: writers.length === 1 ? writers[0] : null, writers, vector: { ...rec.vv } }
}

function describe (current: FileRecord | undefined, copy: FileRecord, original: string): Conflict {
  if (current === undefined) return { path: original, current: null, other: version(copy, Object.keys(copy.vv).sort()) }
  const ahead = Object.keys(current.vv).filter(p => (current.vv[p] ?? 0) > (copy.vv[p] ?? 0)).sort()
  const shared = Object.keys(copy.vv).filter(p => copy.vv[p] > 0 && copy.vv[p] === current.vv[p] && !ahead.includes(p)).sort()
  return { path: original, current: version(current, ahead), other: version(copy, shared) }
}

export class Conflicts {
  constructor (private readonly volumes: Pick<VolumeService, 'volume' | 'listFiles' | 'stat' | 'readFile' | 'putFile' | 'removeFile'>,
    private readonly getFile: (volume: string, path: string) => Promise<FileRecord | undefined>) {}

  async list (volume: string, signal?: AbortSignal): Promise<ConflictList> {
    const vol = await this.volumes.volume(volume)
    const conflicts: Conflict[] = []
    let truncated = false
    for await (const rec of this.volumes.listFiles(vol.name, undefined, signal)) {
      const original = conflictOriginal(rec.path)
      if (original === undefined) continue
      if (conflicts.length >= MAX_CONFLICTS_LISTED) { truncated = true; break }
      conflicts.push(describe(await this.getFile(vol.name, original), rec, original))
    }
    return { volume: vol.name, conflicts, truncated }
  }

  async resolve (volume: string, path: unknown, keep: unknown): Promise<ResolveResult> {
    if (typeof path !== 'string') throw new InvalidInputError(Codes.BAD_REQUEST, 'path must be a string')
    if (keep !== 'current' && keep !== 'other') throw new InvalidInputError(Codes.BAD_REQUEST, 'keep must be "current" or "other"')
    const vol = await this.volumes.volume(volume)
    const p = normalizePath(path)
    const named = conflictOriginal(p)
    const original = named ?? p
    const copies: FileRecord[] = []
    if (named !== undefined) copies.push(await this.volumes.stat(vol.name, p))
    else {
      const dir = original.slice(0, original.lastIndexOf('/') + 1)
      for await (const rec of this.volumes.listFiles(vol.name, dir)) if (conflictOriginal(rec.path) === original) copies.push(rec)
    }
    if (copies.length === 0) throw new NotFoundError(Codes.FILE_NOT_FOUND, `no conflict at ${original} in volume '${vol.name}'`, { volume: vol.name, path: original })
    let written = false
    if (keep === 'other') {
      if (copies.length > 1) {
        throw new InvalidInputError(Codes.BAD_REQUEST, `${original} has ${copies.length} conflict copies: name the one to keep (${copies.map(c => c.path).join(', ')})`, { copies: copies.map(c => c.path) })
      }
      const other = copies[0]
      // Streamed from the copy into the path: the chunks are held already, so nothing is stored twice.
      await this.volumes.putFile(vol.name, original, this.volumes.readFile(vol.name, other), { mode: other.mode })
      written = true
    }
    for (const c of copies) await this.volumes.removeFile(vol.name, c.path)
    return { volume: vol.name, path: original, kept: keep, removed: copies.map(c => c.path), written }
  }
}
