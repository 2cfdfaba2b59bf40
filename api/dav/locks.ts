/**
 * WebDAV locks (RFC 4918 §6-7), held in memory by the node that granted them: a lock guards
 * this node's WebDAV clients against each other (Finder and davfs2 need them to mount writable);
 * it is not a lock across members, which replicate and reconcile as always. Bounded: at most
 * MAX_LOCKS, each with a timeout (at most MAX_TIMEOUT_S); expired locks are swept on every use.
 */
import { randomUUID } from 'node:crypto'
import { ReplicantError, Codes } from '../../core/errors.js'

export const MAX_LOCKS = 10_000
export const DEFAULT_TIMEOUT_S = 600
export const MAX_TIMEOUT_S = 3600
/** An owner element kept with a lock, at most this long. */
export const MAX_OWNER_CHARS = 4096

export interface DavLock {
  token: string
  volume: string
  /** The locked resource: `/` (the volume) or a path. */
  path: string
  depth: 0 | 'infinity'
  scope: 'exclusive' | 'shared'
  /** The client's owner element, as XML, returned in lockdiscovery. */
  owner: string
  timeoutS: number
  expires: number
}

/** Whether `path` is `root` or under it. */
export function within (path: string, root: string): boolean {
  return root === '/' || path === root || path.startsWith(root + '/')
}

export class LockTable {
  private readonly locks = new Map<string, DavLock>()

  constructor (private readonly now: () => number = Date.now) {}

  private sweep (): void {
    const t = this.now()
    for (const [k, l] of this.locks) if (l.expires <= t) this.locks.delete(k)
  }

  get size (): number { this.sweep(); return this.locks.size }

  get (token: string): DavLock | undefined {
    this.sweep()
    return this.locks.get(token)
  }

  /** Locks that apply to `path`: on it, or on a folder above it with depth infinity. */
  covering (volume: string, path: string): DavLock[] {
    this.sweep()
    return [...this.locks.values()].filter(l => l.volume === volume &&
      (l.path === path || (l.depth === 'infinity' && within(path, l.path))))
  }

  /** Locks on `path` or anything under it. */
  inside (volume: string, path: string): DavLock[] {
    this.sweep()
    return [...this.locks.values()].filter(l => l.volume === volume && within(l.path, path))
  }

  /** A new lock, refused (LOCKED, 423) when it conflicts with one held. */
  create (l: Omit<DavLock, 'token' | 'expires'>): DavLock {
    this.sweep()
    const clash = [...this.covering(l.volume, l.path), ...(l.depth === 'infinity' ? this.inside(l.volume, l.path) : [])]
      .find(o => o.scope === 'exclusive' || l.scope === 'exclusive')
    if (clash !== undefined) throw new ReplicantError(Codes.LOCKED, `${l.path} is locked (${clash.scope})`, { path: l.path })
    if (this.locks.size >= MAX_LOCKS) throw new ReplicantError(Codes.LOCKED, `this node holds ${MAX_LOCKS} WebDAV locks, its most`)
    const lock: DavLock = { ...l, owner: l.owner.slice(0, MAX_OWNER_CHARS), token: `opaquelocktoken:${randomUUID()}`, expires: this.now() + l.timeoutS * 1000 }
    this.locks.set(lock.token, lock)
    return lock
  }

  refresh (token: string, timeoutS: number): DavLock | undefined {
    const l = this.get(token)
    if (l === undefined) return undefined
    l.timeoutS = timeoutS
    l.expires = this.now() + timeoutS * 1000
    return l
  }

  remove (token: string): boolean { return this.locks.delete(token) }

  /** Drops the locks on `path` and under it (the resource was deleted or moved away). */
  removeInside (volume: string, path: string): void {
    for (const l of this.inside(volume, path)) this.locks.delete(l.token)
  }

  /**
   * Refuses (LOCKED, 423) a change of `path` (and, when `deep`, of what is under it) unless the
   * request submitted the token of every lock that applies.
   */
  checkWrite (volume: string, path: string, submitted: ReadonlySet<string>, deep = false): void {
    const held = [...this.covering(volume, path), ...(deep ? this.inside(volume, path) : [])]
    const missing = held.find(l => !submitted.has(l.token))
    if (missing !== undefined) throw new ReplicantError(Codes.LOCKED, `${path} is locked: submit its lock token in an If header`, { path })
  }
}

/** The Timeout header's first usable value, capped (RFC 4918 §10.7). */
export function timeoutOf (header: string | undefined): number {
  for (const part of (header ?? '').split(',')) {
    const t = part.trim().toLowerCase()
    if (t === 'infinite') return MAX_TIMEOUT_S
    const m = /^second-(\d+)$/.exec(t)
    if (m !== null) return Math.max(1, Math.min(MAX_TIMEOUT_S, Number(m[1])))
  }
  return DEFAULT_TIMEOUT_S
}
