import { ConflictError, Codes } from '../core/errors.js'
import { genIdOf, type VolumeRecord } from '../core/records.js'
import type { InDoubtPromise } from '../protocols/control-protocol.js'
import { candidateOf } from './generations.js'

/*
 * Changes in doubt met by a proposer (replica-set.ts, docs/CONSISTENCY.md): what it may
 * complete, and how it tells its caller that the next generation was settled otherwise.
 */

/** A change of generation g+1 settled before this node's own change (which then went to g+2): adopted from a member, or completed here. */
export interface CompletedChange { generation: number, genId: string, members: string[], how: 'adopted' | 'completed', from: string }

/** The next generation was settled otherwise during a change (adopted or completed): the change is retried from it. */
export class Superseded extends ConflictError {
  constructor (message: string, readonly done: CompletedChange) {
    super(Codes.GENERATION_CONFLICT, message, { ...done })
    this.name = 'Superseded'
  }
}

/** How many times a change is retried after the next generation was settled otherwise. */
export const RETRIES = 2

/**
 * The configuration a change in doubt promised, if it can be completed from `vol`: the next
 * generation of this very volume, following `vol`'s own generation, with the id promised.
 * Anything else (no configuration kept, another line) is not completed: it is counted as a
 * change in doubt that cannot be resolved here.
 */
export function completable (vol: VolumeRecord, doubts: ReadonlyArray<InDoubtPromise>): VolumeRecord | undefined {
  const d = doubts.find(x => x.config !== undefined)
  if (d?.config === undefined) return undefined
  let c: VolumeRecord
  try { c = candidateOf(d.config, undefined) } catch { return undefined }
  const follows = (c.history ?? []).some(e => e.generation === vol.generation && e.genId === genIdOf(vol))
  return c.id === vol.id && c.name === vol.name && c.generation === vol.generation + 1 && genIdOf(c) === d.genId && follows ? c : undefined
}
