import type { VolumeRecord } from '../core/records.js'
import type { PeerManager } from './peer-manager.js'

/** Default: a member that has not connected to this node within this long is reported never seen. */
export const DEFAULT_NEVER_SEEN_AFTER_MS = 10 * 60_000

/**
 * The members of `vol` (other than `self`) that have never connected to this node although
 * they have been members (or joined peers) for longer than `afterMs` of this node's run:
 * most often a mistyped id added with --force, or a node that was never started. Status
 * shows them as `neverSeen`, and they do not hold back log compaction (docs/CONSISTENCY.md):
 * such a member holds nothing from this node, so whenever it does come it gets a full copy.
 */
export async function neverSeenMembers (peers: Pick<PeerManager, 'neverSeenForMs'>, vol: Pick<VolumeRecord, 'members'>, self: string, afterMs: number): Promise<Set<string>> {
  const out = new Set<string>()
  for (const m of vol.members) {
    if (m === self) continue
    const ms = await peers.neverSeenForMs(m)
    if (ms !== undefined && ms > afterMs) out.add(m)
  }
  return out
}

/** `--never-seen-after`: a duration such as 90s, 10m, 1h, or plain seconds. */
export function parseDurationMs (text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (m === null) return undefined
  const n = Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] ?? 1000)
  return Number.isFinite(n) && n > 0 ? n : undefined
}
