import type { PullMode } from './pulls.js'
import type { CopyProgress } from './background-copy.js'
import type { VolumeRecord } from '../core/records.js'

export interface AnnounceResult { peerId: string, status: 'created' | 'exists' | 'pending' | 'refused', error?: string }

/**
 * What membership needs of the engine that runs it (the sync engine): start pulls and the
 * background copy, read its progress, and record what members report of themselves.
 */
export interface MembershipHost {
  /** Aborted when the engine stops. */
  readonly signal: AbortSignal
  schedulePull: (volume: string, peer: string, mode?: PullMode) => void
  kickCopy: (volume: string) => void
  progressOf: (volume: string) => CopyProgress | undefined
  setRemote: (volume: string, peer: string, state: string, generation: number | null, seq?: number) => void
  forgetRemote: (volume: string, peer: string) => void
  /** A later generation listed this node again after it was removed (`vol` as adopted). */
  relisted: (vol: VolumeRecord) => void
  /** A configuration was committed or adopted here (a revoked reader's streams are closed). */
  reconfigured: (vol: VolumeRecord) => void
}

/**
 * Why a change did not take effect on any other reachable member (every member that answered
 * refused it), naming who refused and why; undefined if one took it, or none was reachable.
 */
export function notTakenEffect (announce: readonly AnnounceResult[]): string | undefined {
  const answered = announce.filter(a => a.status !== 'pending')
  if (answered.length === 0 || answered.some(a => a.status !== 'refused')) return undefined
  return answered.map(a => `${a.peerId} refused: ${a.error ?? 'no reason given'}`).join('; ')
}
