/**
 * Version vectors: replica id -> counter. A pure module; the sync engine asks compare() whether
 * an incoming version fast-forwards, is already known, or is concurrent (a conflict).
 */
export type VersionVector = Readonly<Record<string, number>>

export type Ordering = 'equal' | 'greater' | 'lesser' | 'concurrent'

/** How `a` relates to `b`: greater means a has seen everything b has, and more. */
export function compare (a: VersionVector, b: VersionVector): Ordering {
  let aAhead = false
  let bAhead = false
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[key] ?? 0
    const y = b[key] ?? 0
    if (x > y) aAhead = true
    else if (y > x) bAhead = true
    if (aAhead && bAhead) return 'concurrent'
  }
  if (aAhead) return 'greater'
  if (bAhead) return 'lesser'
  return 'equal'
}

/** The vector after `replica` makes one more update. */
export function increment (v: VersionVector, replica: string): VersionVector {
  return normalize({ ...v, [replica]: (v[replica] ?? 0) + 1 })
}

/** The least vector that dominates (or equals) both. */
export function merge (a: VersionVector, b: VersionVector): VersionVector {
  const out: Record<string, number> = { ...a }
  for (const [key, y] of Object.entries(b)) out[key] = Math.max(out[key] ?? 0, y)
  return normalize(out)
}

/** Drops zero entries and sorts keys, so equal vectors serialise identically. */
export function normalize (v: VersionVector): VersionVector {
  const out: Record<string, number> = {}
  for (const key of Object.keys(v).sort()) {
    const n = v[key]
    if (n !== undefined && n > 0) out[key] = n
  }
  return out
}

/** A stable text form (sorted keys), used for deterministic tie-breaks and conflict names. */
export function toKey (v: VersionVector): string {
  return Object.keys(v).sort().map(k => `${k}:${v[k]}`).join(',')
}

export function isValid (v: unknown): v is VersionVector {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  for (const [key, n] of Object.entries(v)) {
    if (key.length === 0 || key.length > 128) return false
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return false
  }
  return true
}
