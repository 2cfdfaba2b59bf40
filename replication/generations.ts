import { randomBytes } from 'node:crypto'
import { genIdOf, mergeHistory, type VolumeRecord } from '../core/records.js'
import type { VolumeHistory } from './rejoin-rules.js'

/**
 * Whether descriptor `a` supersedes `b`: a later generation. Two configurations of one
 * generation are a conflict, never adopted (one configuration per generation, promises.ts).
 */
export function later (a: VolumeRecord, b: VolumeRecord): boolean {
  return a.generation > b.generation
}

export function historyOf (vol: VolumeRecord): VolumeHistory {
  return { volumeId: vol.id, generation: vol.generation, genId: genIdOf(vol), history: vol.history ?? [] }
}

/** A new generation: fresh random id, the old one pushed onto the history. */
export function nextGeneration (vol: VolumeRecord, members: string[] = vol.members): VolumeRecord {
  const current = { generation: vol.generation, genId: genIdOf(vol) }
  const next = { generation: vol.generation + 1, genId: randomBytes(8).toString('hex') }
  return { ...vol, generation: next.generation, genId: next.genId, members: [...new Set(members)].sort(), history: mergeHistory(next, vol.history, [current]) }
}
