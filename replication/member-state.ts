import { ReplicantError, Codes } from '../core/errors.js'
import { logger } from '../core/log.js'
import type { MemberStateName, VolumeRecord } from '../core/records.js'
import type { Store } from '../store/store.js'

const log = logger('member-state')

/**
 * This node's member state of each volume, and the only module that changes it.
 *
 *   state      kept                  meaning
 *   steady     stored (or absent)    holds every chunk of the index it knows
 *   copy       stored                a wannabe: index first, chunks by the background copy; serves reads
 *   merge      stored                after an unclean shutdown: full index comparison and local verification
 *   removed    stored                no longer a member: serves nothing, keeps its data
 *   minicopy   shown by a pull       a steady member pulling since its watermark (a full comparison shows `copy`)
 *   repairing  in memory, on steady  an update's chunks could not be fetched; the background copy fetches them
 *                                    (status keeps `state: steady` and says `repairing: true`)
 *   offline    in memory, over any   the operator refused a full copy: no reads, writes or pulls here
 *
 *   from                  to         when
 *   (new, for a member)   copy       a member asks this node to hold a volume new here (also an
 *                                    approved offer, and --discard-local's recopy)
 *   (new, here)           steady     created through the API, or restored from a dump
 *   copy, merge           steady     every chunk held and the index caught up (background copy)
 *   steady, merge         merge      found dirty at start (a merge interrupted merges again)
 *   removed               removed    found dirty at start: it now owes a merge (`removedFrom: merge`),
 *                                    unless it was removed mid-copy (a copy verifies by fetching)
 *   steady, copy, merge   removed    remove-replica of this node, or a later generation without it
 *   removed               steady     a later generation that lists this node again (the rejoin
 *                                    rules then decide how it catches up)
 *   removed               copy,      the same, for a node removed while in copy or merge (kept
 *                         merge      in `removedFrom`): it did not hold everything, so it resumes;
 *                                    re-entering merge this way runs the whole merge again
 *                                    (the engine's `relisted`: verification, then full pulls)
 *   steady, copy, merge   repairing  chunks of an update not fetched (copy and merge only once
 *                                    they fetch updates inline)
 *   repairing             steady     a background copy pass found nothing missing
 *   any                   offline    a full copy refused by the operator
 *   offline               (stored)   a full copy approved later
 *   any                   itself     always allowed (a no-op)
 */
export type StoredMemberState = MemberStateName
export type VolumeMemberState = StoredMemberState | 'minicopy' | 'repairing' | 'offline'

const NEXT: Record<StoredMemberState, readonly StoredMemberState[]> = {
  steady: ['merge', 'removed'],
  copy: ['steady', 'removed'],
  merge: ['steady', 'removed'],
  removed: ['steady', 'copy', 'merge']
}

/** The state a volume starts in: `requested` by a member (a wannabe), `created` here, `restored` from a dump. */
export function initialState (how: 'requested' | 'restored'): StoredMemberState {
  return how === 'requested' ? 'copy' : 'steady'
}

/** The stored state (records written before the field existed are steady). */
export function storedState (vol: Pick<VolumeRecord, 'state'>): StoredMemberState {
  return vol.state ?? 'steady'
}

/** `vol` in state `to`; an illegal transition is a typed error (a bug, not an input). */
export function moveTo (vol: VolumeRecord, to: StoredMemberState): VolumeRecord {
  const from = storedState(vol)
  if (from === to) return vol
  if (!NEXT[from].includes(to)) {
    log.error('volume %s: illegal member state transition %s -> %s', vol.name, from, to)
    throw new ReplicantError(Codes.ILLEGAL_TRANSITION, `volume '${vol.name}': no member state transition from ${from} to ${to}`, { volume: vol.name, from, to })
  }
  // A wannabe removed mid-copy (or a merge mid-verification) does not hold every chunk: it
  // must resume that if it is listed again, not come back steady (issue 13).
  const next: VolumeRecord = { ...vol, state: to }
  if (to === 'removed' && (from === 'copy' || from === 'merge')) next.removedFrom = from
  else delete next.removedFrom
  return next
}

/**
 * `vol` in the state after adopting a later generation: removed if it does not list us; if
 * it lists us again, the state we were removed from when we did not hold everything (copy,
 * merge), else steady. The whole record, so `removedFrom` is set and cleared with the state.
 */
export function adopted (vol: VolumeRecord, member: boolean): VolumeRecord {
  if (!member) return moveTo(vol, 'removed')
  return vol.state === 'removed' ? moveTo(vol, vol.removedFrom ?? 'steady') : vol
}

/**
 * A removed replica found dirty at start: it was not shut down cleanly, so it owes the merge
 * it cannot run while removed (it serves nothing and pulls nothing). Kept in the record, so a
 * clean stop (which clears the dirty flag) does not forget it before it is listed again.
 */
export function owingMerge (vol: VolumeRecord): VolumeRecord {
  return vol.state === 'removed' && vol.removedFrom === undefined ? { ...vol, removedFrom: 'merge' } : vol
}

/**
 * The in-memory side of the machine (offline, repairing) and the guards of copy and merge
 * (index caught up, chunks verified), with the stored transitions that read them.
 */
export class MemberStates {
  private readonly held = new Map<string, string>()
  private readonly repairs = new Set<string>()
  /** Volumes in copy or merge whose full index has been pulled to the end from some member. */
  private readonly caughtUp = new Set<string>()
  /** Volumes in merge whose own chunks have been verified since the merge began. */
  private readonly verified = new Set<string>()

  constructor (private readonly store: Store) {}

  /** Volumes held offline on this node (a refused full copy), with the reason. */
  get offline (): ReadonlyMap<string, string> { return this.held }
  /** Volumes repairing: an update's chunks are fetched by the background copy. */
  get repairing (): ReadonlySet<string> { return this.repairs }

  holdOffline (volume: string, why: string): void { this.held.set(volume, why) }
  bringOnline (volume: string): void { this.held.delete(volume) }

  /** Marked only once the new records are committed: `repairing` never shows while the old version is current. */
  startRepair (volume: string): void { this.repairs.add(volume) }

  isCaughtUp (volume: string): boolean { return this.caughtUp.has(volume) }

  /**
   * Whether this node's index of `vol` is complete, so that a wannabe that pulls it to the end
   * holds the whole index: steady or merge (its own, as it committed it), or a wannabe whose
   * full pull from such a member has ended. Not a wannabe before that, nor an offline replica.
   */
  indexComplete (vol: VolumeRecord): boolean {
    if (this.held.has(vol.name)) return false
    const state = storedState(vol)
    return state === 'steady' || state === 'merge' || (state === 'copy' && this.caughtUp.has(vol.name))
  }
  markCaughtUp (volume: string): void { this.caughtUp.add(volume) }
  isVerified (volume: string): boolean { return this.verified.has(volume) }
  markVerified (volume: string): void { this.verified.add(volume) }

  /** copy or merge -> steady (and repairing -> steady): the background copy found nothing missing. */
  async becomeSteady (volume: string): Promise<void> {
    this.repairs.delete(volume)
    await this.store.updateVolume(volume, v => v.state === 'copy' || v.state === 'merge' ? moveTo(v, 'steady') : v)
    this.caughtUp.delete(volume)
    this.verified.delete(volume)
  }

  /**
   * steady or merge -> merge, persisted: a crash during the merge merges again. A merge that
   * begins (again) starts over: a verification or full pull from before it does not count.
   */
  async enterMerge (volume: string): Promise<void> {
    await this.store.updateVolume(volume, v => moveTo(v, 'merge'))
    this.caughtUp.delete(volume)
    this.verified.delete(volume)
  }

  /** What this node tells a member asking for its state: offline, or the stored state. */
  reported (vol: VolumeRecord): VolumeMemberState {
    return this.held.has(vol.name) ? 'offline' : storedState(vol)
  }

  /**
   * The state status shows: offline, the stored state, or while a steady member runs a
   * minicopy or full index comparison (`pulling`), that transient state.
   */
  shown (vol: VolumeRecord, pulling: 'minicopy' | 'copy' | undefined): VolumeMemberState {
    if (this.held.has(vol.name)) return 'offline'
    const stored = storedState(vol)
    if (stored !== 'steady') return stored
    return pulling ?? 'steady'
  }
}
