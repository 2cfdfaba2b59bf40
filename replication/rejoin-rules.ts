/**
 * What a member does when it (re)connects to another member of a volume: nothing, a minicopy
 * (only the changes since its watermark travel), a full copy (a full index comparison), or a
 * refusal. A pure function of what both sides know, in the spirit of DRBD's generation
 * identifiers. The table is docs/CONSISTENCY.md; each row has a test.
 */
export interface GenerationEntry {
  generation: number
  /** Random id of this generation: two members that bump independently never share one. */
  genId: string
}

export interface VolumeHistory {
  volumeId: string
  generation: number
  genId: string
  /** Earlier generations, newest last; short (truncated), so an absence proves nothing. */
  history: GenerationEntry[]
}

export interface PeerLog {
  /** The peer's change-log head. */
  head: number
  /** The lowest seq from which the peer's "changes since N" is complete (compaction raises it). */
  floor: number
}

export type Decision = 'nothing' | 'minicopy' | 'copy' | 'refused'

export interface RejoinDecision { decision: Decision, since: number, why: string }

function ids (h: VolumeHistory): Set<string> {
  return new Set([h.genId, ...h.history.map(e => e.genId)])
}

/**
 * @param local this node's view of the volume
 * @param remote the peer's view
 * @param watermark how far this node has applied the peer's change log (0: never)
 * @param log the peer's change-log head and floor
 */
export function decideRejoin (local: VolumeHistory, remote: VolumeHistory, watermark: number, log: PeerLog): RejoinDecision {
  if (local.volumeId !== remote.volumeId) {
    return { decision: 'refused', since: 0, why: `unrelated replicas: volume id ${remote.volumeId} is not ${local.volumeId}` }
  }
  // Related when the histories meet anywhere: one is an ancestor of the other, or both
  // descend from a common generation (two members that moved on independently).
  const mine = ids(local)
  const related = [...ids(remote)].some(id => mine.has(id))
  if (!related) {
    return { decision: 'copy', since: 0, why: `unknown history: generations ${local.generation} (${local.genId}) and ${remote.generation} (${remote.genId}) share no entry` }
  }
  if (watermark === 0 && log.head > 0) {
    return { decision: 'copy', since: 0, why: 'no watermark for this peer: full index comparison' }
  }
  if (watermark < log.floor) {
    return { decision: 'copy', since: 0, why: `watermark ${watermark} is older than the peer's retained change log (from ${log.floor})` }
  }
  if (local.genId === remote.genId && watermark >= log.head) {
    return { decision: 'nothing', since: watermark, why: `same generation ${local.generation}, up to date at ${watermark}` }
  }
  const how = local.genId === remote.genId ? `same generation ${local.generation}` : `known history (generations ${local.generation} and ${remote.generation})`
  return { decision: 'minicopy', since: watermark, why: `${how}: changes since ${watermark} of ${log.head}` }
}
