import { ConflictError, Codes } from '../core/errors.js'
import { genIdOf, type VolumeRecord } from '../core/records.js'

/** A promise not confirmed in this long is dropped (its proposer died or gave up). */
export const PROMISE_MS = 30_000

export interface GenerationPromise { generation: number, genId: string, proposer: string, expires: number }

/**
 * One configuration per generation: before a change commits, every reachable member promises
 * the proposed generation to that one generation id, and refuses any other for it until the
 * promise is confirmed (the descriptor adopted), released, or expired. In memory only: a
 * restart forgets promises, and the stored generation then does the refusing.
 */
export class GenerationPromises {
  private readonly held = new Map<string, GenerationPromise>()

  private live (volume: string): GenerationPromise | undefined {
    const p = this.held.get(volume)
    if (p !== undefined && p.expires < Date.now()) { this.held.delete(volume); return undefined }
    return p
  }

  /** Promises `generation` of `vol` to `genId`; GENERATION_CONFLICT if it is held or promised otherwise. */
  take (vol: VolumeRecord, generation: number, genId: string, proposer: string): void {
    if (vol.generation >= generation) {
      if (vol.generation === generation && genIdOf(vol) === genId) return
      throw new ConflictError(Codes.GENERATION_CONFLICT, `volume '${vol.name}' is already at generation ${vol.generation} here: nothing changed, retry the change`, { volume: vol.name, generation: vol.generation })
    }
    const p = this.live(vol.name)
    if (p !== undefined && p.genId !== genId && p.generation >= generation) {
      throw new ConflictError(Codes.GENERATION_CONFLICT, `another change of '${vol.name}' (proposed by ${p.proposer}) holds generation ${p.generation}: nothing changed, retry the change`, { volume: vol.name, generation: p.generation })
    }
    this.held.set(vol.name, { generation, genId, proposer, expires: Date.now() + PROMISE_MS })
  }

  release (volume: string, genId: string): void {
    if (this.held.get(volume)?.genId === genId) this.held.delete(volume)
  }

  /** The live promise a descriptor of (generation, genId) would break, if any. */
  conflicting (volume: string, generation: number, genId: string): GenerationPromise | undefined {
    const p = this.live(volume)
    return p !== undefined && p.generation === generation && p.genId !== genId ? p : undefined
  }

  /** A generation was adopted: promises up to it are kept or moot. */
  settle (volume: string, generation: number): void {
    const p = this.held.get(volume)
    if (p !== undefined && p.generation <= generation) this.held.delete(volume)
  }
}
