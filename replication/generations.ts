import { randomBytes } from 'node:crypto'
import { RECORD_VERSION, genIdOf, mergeHistory, withReaders, type VolumeRecord } from '../core/records.js'
import { asVolumeRecord } from '../core/codec.js'
import type { VolumeDescriptor } from '../protocols/control-protocol.js'
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

/** The record a peer's descriptor describes, validated (BAD_MESSAGE), as this node would hold it new. */
export function candidateOf (desc: VolumeDescriptor, state: VolumeRecord['state']): VolumeRecord {
  return withReaders(asVolumeRecord({
    name: desc?.name, id: desc?.id, generation: desc?.generation, writeMode: desc?.writeMode, chunkSize: desc?.chunkSize, createdAt: desc?.createdAt,
    members: Array.isArray(desc?.members) ? [...new Set(desc.members)].sort() : desc?.members,
    genId: desc?.genId, history: Array.isArray(desc?.history) ? desc.history : [],
    ...(desc?.readers !== undefined ? { readers: desc.readers } : {}),
    v: RECORD_VERSION, seq: 0, dirty: false, state
  }), desc?.readers)
}
