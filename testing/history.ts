/**
 * A history of the writes and deletes a client made against a topology, and the checker that
 * decides, once the topology has healed and settled, whether anything was lost.
 *
 * Recording: every operation is begun before its request goes out (`begin`) and then ends as
 * - `acked`: the node answered 2xx; the reply's version vector is kept;
 * - `failed`: the request was refused before it reached a node (connection refused), or the
 *   node answered with an error: it was not applied;
 * - `unknown`: the connection broke after the request went out (the node was killed): it may
 *   or may not have been applied. Its bytes are allowed to appear; its version is not known.
 *
 * What `check()` asserts, per volume, on the final trees (path, size, version, sha256 of the
 * bytes read back) of every member:
 * 1. IDENTICAL: every member holds the same tree (paths, sizes, versions and content hashes).
 * 2. NEVER_WRITTEN: every file's sha256 is the hash of a put attempted (in any state) to its
 *    path, or for a conflict copy `dir/name.conflict-<8hex>.ext` to `dir/name.ext`.
 * 3. LOST: every acknowledged put W to path P is accounted for:
 *    a. present: a file at P or at a conflict copy of P holds W's bytes; or
 *    b. superseded: an acknowledged put or delete to P has a version strictly greater than
 *       W's (it was made on a node that already held W, so it replaced W on purpose); or
 *    c. uncertain: a put or delete to P whose outcome is `unknown` (its version was never
 *       seen) started after W started; it may have replaced W knowingly. Counted apart in
 *       the stats so a run shows how much it could not decide.
 *    Otherwise W was lost.
 * 4. REGRESSED: the live file at P (if any) is never older than an acknowledged operation on
 *    P: its version compared with every acknowledged put's or delete's version is greater,
 *    equal or concurrent, never lesser. For a delete this is what "the delete held" means:
 *    a deleted path may be absent, or hold a version concurrent with or newer than the delete
 *    (a concurrent update beats a tombstone), but never the version the delete removed.
 *
 * Known blind spot of rule 3b: if a conflict copy holding W were lost and a later write made
 * knowing W's merged version replaced the winner, W would count as superseded.
 */
import { createHash } from 'node:crypto'
import { compare, toKey, type VersionVector } from '../core/version-vector.js'

export type OpKind = 'put' | 'delete'
export type OpStatus = 'pending' | 'acked' | 'failed' | 'unknown'

export interface Op {
  id: number
  kind: OpKind
  volume: string
  path: string
  /** Name of the node the request went to. */
  node: string
  /** sha256 (hex) of the bytes of a put. */
  sha256?: string
  size?: number
  startedAt: number
  endedAt?: number
  status: OpStatus
  /** The version vector the node reported for the committed record (acked only). */
  version?: VersionVector
  error?: string
  /** The volume's members (node names) when it was acknowledged, if known (see membersAt). */
  members?: string[]
}

/** A read made during a schedule: the sha256 of the bytes it returned, or null for "no such file". */
export interface Read { volume: string, path: string, node: string, sha256: string | null, at: number }

/** One file of a member's final tree. */
export interface TreeEntry { path: string, size: number, sha256: string, version: VersionVector }

/**
 * The four rules above; runners add MISSING_CHUNK (a member's own store lacks a chunk of its
 * tree), ERROR (a step failed, or the volume never became steady) and UNCLEAN_STOP (a clean
 * stop did not exit 0).
 */
export type ViolationKind = 'IDENTICAL' | 'NEVER_WRITTEN' | 'LOST' | 'REGRESSED' | 'MISSING_CHUNK' | 'ERROR' | 'UNCLEAN_STOP' |
  /** A read during the schedule returned bytes no put to that path ever wrote. */
  'READ_NEVER_WRITTEN' |
  /** An acknowledged all-mode write is not on a member that was a member when it was acknowledged (and stayed one). */
  'ALL_MODE_MISSING' |
  /** A node's RSS went past the stated bound. */
  'RSS_BOUND' |
  /** A member still changing once steady, or far more local changes than writes (chaos-churn.ts). */
  'CHURN' |
  /** A restore killed mid-way left, once its node restarted, a file the snapshot does not hold. */
  'PARTIAL_RESTORE' |
  /** Two configurations of one generation (chaos-splits.ts): impossible without --force. */
  'SPLIT_GENERATION'

export interface Violation { kind: ViolationKind, message: string, path?: string, op?: number }

export interface CheckStats {
  files: number
  conflictCopies: number
  ackedPuts: number
  ackedDeletes: number
  /** Acknowledged puts whose bytes are in the final tree. */
  present: number
  /** Acknowledged puts replaced on purpose (rule 3b). */
  superseded: number
  /** Acknowledged puts possibly replaced by an operation of unknown outcome (rule 3c). */
  uncertain: number
}

export interface CheckResult { ok: boolean, violations: Violation[], stats: CheckStats }

const CONFLICT_SEGMENT = /^(.*)\.conflict-[0-9a-f]{8}((?:\.[^.]*)?)$/

/** The path a conflict copy was made for (`/d/a.conflict-0123abcd.txt` -> `/d/a.txt`); other paths unchanged. */
export function conflictBase (path: string): string {
  const slash = path.lastIndexOf('/')
  let name = path.slice(slash + 1)
  for (let m = CONFLICT_SEGMENT.exec(name); m !== null && m[1].length > 0; m = CONFLICT_SEGMENT.exec(name)) name = m[1] + m[2]
  return path.slice(0, slash + 1) + name
}

export function isConflictCopy (path: string): boolean {
  return conflictBase(path) !== path
}

export function sha256Hex (bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}

export class History {
  private readonly list: Op[] = []
  private nextId = 1
  private readonly aliases = new Map<string, string>()
  private readonly readList: Read[] = []
  /** Asked at each acknowledgement: the volume's members then, if the caller knows them. */
  membersAt: ((volume: string) => string[] | undefined) | undefined

  /** Shows `peerId` as `name` in version vectors of messages (a topology registers its nodes). */
  alias (peerId: string, name: string): void { this.aliases.set(peerId, name) }

  private v (version: VersionVector): string {
    return `{${Object.keys(version).sort().map(k => `${this.aliases.get(k) ?? k}:${version[k]}`).join(',')}}`
  }

  private describe (op: Op): string {
    const what = op.kind === 'put' ? `put ${op.path} (${op.size ?? '?'} B, sha256 ${op.sha256?.slice(0, 12) ?? '?'})` : `delete ${op.path}`
    return `#${op.id} ${what} on ${op.node}${op.version !== undefined ? ` version ${this.v(op.version)}` : ''}`
  }

  /** Records an operation about to be sent; finish it with ack() or fail(). */
  begin (kind: OpKind, volume: string, path: string, node: string, content?: Uint8Array | string): Op {
    const op: Op = { id: this.nextId++, kind, volume, path, node, startedAt: Date.now(), status: 'pending' }
    if (content !== undefined) {
      op.sha256 = sha256Hex(content)
      op.size = typeof content === 'string' ? Buffer.byteLength(content) : content.byteLength
    }
    this.list.push(op)
    return op
  }

  ack (op: Op, version?: VersionVector): void {
    op.status = 'acked'
    op.endedAt = Date.now()
    if (version !== undefined) op.version = { ...version }
    const members = this.membersAt?.(op.volume)
    if (members !== undefined) op.members = [...members]
  }

  /** Records a read's outcome: the bytes it returned (null: the file did not exist). */
  read (volume: string, path: string, node: string, bytes: Uint8Array | null): void {
    this.readList.push({ volume, path, node, sha256: bytes === null ? null : sha256Hex(bytes), at: Date.now() })
  }

  reads (volume?: string): Read[] { return this.readList.filter(r => volume === undefined || r.volume === volume) }

  /** READ_NEVER_WRITTEN: every read returned nothing or the bytes of a put attempted to that path (any outcome). */
  checkReads (volume: string): Violation[] {
    const written = new Set(this.ops(volume).filter(o => o.kind === 'put').map(o => `${o.path} ${o.sha256}`))
    return this.reads(volume).filter(r => r.sha256 !== null && !written.has(`${r.path} ${r.sha256}`)).map(r => ({
      kind: 'READ_NEVER_WRITTEN' as const, path: r.path, message: `a read of ${r.path} on ${r.node} returned bytes (sha256 ${r.sha256!.slice(0, 12)}) no put to it ever wrote`
    }))
  }

  /**
   * ALL_MODE_MISSING: every acknowledged put of an all-mode volume is, in each final tree of a
   * node that was a member when it was acknowledged and stayed one (`stayed(node, op)`), present
   * (its bytes at its path or a conflict copy) or superseded by an acknowledged op on that path
   * with a greater version, or possibly replaced by an op of unknown outcome started after it.
   * Puts acknowledged while the members were not known are skipped (counted by the caller).
   */
  checkAllMode (volume: string, trees: Map<string, TreeEntry[]>, stayed: (node: string, op: Op) => boolean): Violation[] {
    const out: Violation[] = []
    const ops = this.ops(volume)
    for (const op of ops) {
      if (op.kind !== 'put' || op.status !== 'acked' || op.members === undefined) continue
      const others = ops.filter(o => o !== op && o.path === op.path)
      if (op.version !== undefined && others.some(o => o.status === 'acked' && o.version !== undefined && compare(o.version, op.version!) === 'greater')) continue
      if (others.some(o => (o.status === 'unknown' || o.status === 'pending') && o.startedAt >= op.startedAt)) continue
      for (const m of op.members) {
        const tree = trees.get(m)
        if (tree === undefined || !stayed(m, op)) continue
        if (tree.some(e => conflictBase(e.path) === op.path && e.sha256 === op.sha256)) continue
        out.push({ kind: 'ALL_MODE_MISSING', path: op.path, op: op.id, message: `${this.describe(op)} was acknowledged in all mode with ${m} a member, but ${m} does not hold it` })
      }
    }
    return out
  }

  /** `applied: 'no'` when the request provably did not take effect; 'unknown' when it may have. */
  fail (op: Op, err: unknown, applied: 'no' | 'unknown'): void {
    op.status = applied === 'no' ? 'failed' : 'unknown'
    op.endedAt = Date.now()
    op.error = (err as Error)?.message ?? String(err)
  }

  ops (volume?: string): Op[] {
    return volume === undefined ? [...this.list] : this.list.filter(o => o.volume === volume)
  }

  counts (volume?: string): Record<OpStatus, number> & { deletes: number } {
    const out = { pending: 0, acked: 0, failed: 0, unknown: 0, deletes: 0 }
    for (const op of this.ops(volume)) {
      out[op.status]++
      if (op.kind === 'delete') out.deletes++
    }
    return out
  }

  /**
   * Checks one node's tree against the operations it acknowledged itself: its state of a path
   * only moves forward, so after a kill -9 and restart every path must hold a version equal to
   * or newer than the last one it acknowledged (or be absent if a delete of that path was
   * ever attempted), or hold that version as a conflict copy. Returns the violations (kind LOST).
   */
  checkNodeDurability (volume: string, node: string, tree: TreeEntry[]): Violation[] {
    const byPath = new Map(tree.map(e => [e.path, e]))
    const deleted = new Set(this.ops(volume).filter(o => o.kind === 'delete').map(o => o.path))
    const out: Violation[] = []
    for (const op of this.ops(volume)) {
      if (op.node !== node || op.status !== 'acked' || op.version === undefined) continue
      const e = byPath.get(op.path)
      if (e === undefined) {
        if (op.kind === 'put' && !deleted.has(op.path)) {
          out.push({ kind: 'LOST', path: op.path, op: op.id, message: `${node} acknowledged ${this.describe(op)} but no longer holds ${op.path}` })
        }
        continue
      }
      const order = compare(e.version, op.version)
      // A write that lost a conflict lives on as a copy under its own vector (reconcile.ts):
      // still held. Only this node's tree is known here (no hashes), so match by vector.
      const copied = (): boolean => tree.some(c => c.path !== op.path && conflictBase(c.path) === op.path && ['equal', 'greater'].includes(compare(c.version, op.version!)))
      // A delete held when the path is gone or newer, or holds a version concurrent with the
      // tombstone: a concurrent update beats a tombstone, and a node that lacked the bytes of
      // the record that beat it takes the next winner under that winner's vector (reconcile.ts
      // `loserHeld`), which need not know the delete (w9long/102). Only the version the
      // delete removed, or an older one, coming back is a loss.
      if (op.kind === 'delete' && order === 'concurrent') continue
      if ((order === 'lesser' || order === 'concurrent') && !copied()) {
        out.push({ kind: 'LOST', path: op.path, op: op.id, message: `${node} acknowledged ${this.describe(op)} but now holds version ${this.v(e.version)} (${order})` })
      }
    }
    return out
  }

  /** The final check; `trees` maps each member's name to its tree of `volume`. */
  check (volume: string, trees: Map<string, TreeEntry[]>): CheckResult {
    const violations: Violation[] = []
    const stats: CheckStats = { files: 0, conflictCopies: 0, ackedPuts: 0, ackedDeletes: 0, present: 0, superseded: 0, uncertain: 0 }
    const canon = (tree: TreeEntry[]): string[] => [...tree]
      .sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0)
      .map(e => `${e.path} ${e.size} ${e.sha256} {${toKey(e.version)}}`)
    const names = [...trees.keys()]
    if (names.length === 0) return { ok: false, violations: [{ kind: 'IDENTICAL', message: 'no trees to check' }], stats }
    const ref = canon(trees.get(names[0])!)
    for (const name of names.slice(1)) {
      const other = canon(trees.get(name)!)
      if (other.join('\n') === ref.join('\n')) continue
      const a = new Set(ref)
      const b = new Set(other)
      const onlyRef = ref.filter(l => !b.has(l)).slice(0, 5)
      const onlyOther = other.filter(l => !a.has(l)).slice(0, 5)
      violations.push({ kind: 'IDENTICAL', message: `${names[0]} and ${name} differ: only on ${names[0]}: [${onlyRef.join('; ')}] only on ${name}: [${onlyOther.join('; ')}]` })
    }

    const ops = this.ops(volume)
    const putsByPath = new Map<string, Op[]>()
    const opsByPath = new Map<string, Op[]>()
    for (const op of ops) {
      if (op.kind === 'put') putsByPath.set(op.path, [...(putsByPath.get(op.path) ?? []), op])
      opsByPath.set(op.path, [...(opsByPath.get(op.path) ?? []), op])
    }
    const seen = new Set<string>()
    const once = (v: Violation): void => {
      const key = `${v.kind} ${v.message}`
      if (!seen.has(key)) { seen.add(key); violations.push(v) }
    }
    // Identical trees are checked once; diverged ones each, to say which member lost what.
    const checked = violations.length === 0 ? [[names[0], trees.get(names[0])!] as const] : [...trees]
    for (const [name, tree] of checked) {
      const holding = new Map<string, Set<string>>() // base path -> sha256s held at it or its conflict copies
      const live = new Map<string, TreeEntry>()
      for (const e of tree) {
        const base = conflictBase(e.path)
        if (base === e.path) live.set(e.path, e)
        holding.set(base, (holding.get(base) ?? new Set()).add(e.sha256))
        // Rule 2: bytes must come from some put to that path.
        const origin = (putsByPath.get(base) ?? []).some(op => op.sha256 === e.sha256)
        if (!origin) {
          once({ kind: 'NEVER_WRITTEN', path: e.path, message: `${name} holds ${e.path} (${e.size} B, sha256 ${e.sha256.slice(0, 12)}) which no put to ${base} ever wrote` })
        }
      }
      for (const op of ops) {
        if (op.status !== 'acked') continue
        // Rule 4: the live version never goes back behind an acknowledged operation.
        const cur = live.get(op.path)
        if (cur !== undefined && op.version !== undefined) {
          const order = compare(cur.version, op.version)
          if (order === 'lesser') {
            once({ kind: 'REGRESSED', path: op.path, op: op.id, message: `${name} holds ${op.path} at version ${this.v(cur.version)}, older than acknowledged ${this.describe(op)}` })
          }
        }
        if (op.kind !== 'put') continue
        // Rule 3: every acknowledged put is present, superseded on purpose, or undecidable.
        if (holding.get(op.path)?.has(op.sha256!) === true) continue
        const others = (opsByPath.get(op.path) ?? []).filter(o => o !== op)
        const superseded = op.version !== undefined && others.some(o => o.status === 'acked' && o.version !== undefined && compare(o.version, op.version!) === 'greater')
        if (superseded) continue
        const uncertain = others.some(o => (o.status === 'unknown' || o.status === 'pending' || (o.status === 'acked' && o.version === undefined)) && o.startedAt >= op.startedAt)
        if (uncertain) continue
        once({ kind: 'LOST', path: op.path, op: op.id, message: `${this.describe(op)} was acknowledged but ${name} holds neither its bytes nor a newer version made knowing it (at ${op.path}: ${cur !== undefined ? `${this.v(cur.version)} sha256 ${cur.sha256.slice(0, 12)}` : 'nothing'})` })
      }
    }

    // Stats from the first tree (all trees are equal when the check passes).
    const first = trees.get(names[0])!
    const held = new Map<string, Set<string>>()
    for (const e of first) {
      stats.files++
      const base = conflictBase(e.path)
      if (base !== e.path) stats.conflictCopies++
      held.set(base, (held.get(base) ?? new Set()).add(e.sha256))
    }
    for (const op of ops) {
      if (op.status !== 'acked') continue
      if (op.kind === 'delete') { stats.ackedDeletes++; continue }
      stats.ackedPuts++
      if (held.get(op.path)?.has(op.sha256!) === true) { stats.present++; continue }
      const others = (opsByPath.get(op.path) ?? []).filter(o => o !== op)
      if (op.version !== undefined && others.some(o => o.status === 'acked' && o.version !== undefined && compare(o.version, op.version!) === 'greater')) stats.superseded++
      else stats.uncertain++
    }
    return { ok: violations.length === 0, violations, stats }
  }
}
