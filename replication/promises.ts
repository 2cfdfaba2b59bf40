import { ConflictError, Codes } from '../core/errors.js'
import { genIdOf, type VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'

const log = logger('members')

/** A promise not confirmed in this long is dropped (its proposer died or gave up). */
export const PROMISE_MS = 30_000

/** Store meta key of the promises held (one per volume at most, so the record stays small). */
export const PROMISES_KEY = 'generation-promises'

export interface GenerationPromise { generation: number, genId: string, proposer: string, expires: number }

/** Where promises are kept across restarts (the store's metadata, synced writes). */
export interface PromiseStore {
  getMeta: <T>(key: string) => Promise<T | undefined>
  putMeta: (key: string, value: unknown) => Promise<void>
}

/**
 * One configuration per generation: before a change commits, a majority of the members of
 * the configuration it changes promises the proposed generation to that one generation id,
 * and each refuses any other id for it until the promise is confirmed (the descriptor
 * adopted), released, or expired. Promises are persisted before they are answered: a member
 * restarted between a promise and the commit would otherwise promise the generation a second
 * time, and two majorities could then hold two configurations (docs/CONSISTENCY.md).
 */
export class GenerationPromises {
  private readonly held = new Map<string, GenerationPromise>()

  /** `lifeMs`: how long a promise lives unconfirmed (PROMISE_MS; tests shorten it). */
  constructor (private readonly store?: PromiseStore, readonly lifeMs = PROMISE_MS) {}

  /** Reads the promises kept by the last run (expired ones are dropped). */
  async load (): Promise<void> {
    const kept = await this.store?.getMeta<Record<string, GenerationPromise>>(PROMISES_KEY)
    for (const [volume, p] of Object.entries(kept ?? {})) {
      if (typeof p?.generation === 'number' && typeof p.genId === 'string' && typeof p.expires === 'number' && p.expires >= Date.now()) {
        this.held.set(volume, { generation: p.generation, genId: p.genId, proposer: String(p.proposer), expires: p.expires })
      }
    }
  }

  private live (volume: string): GenerationPromise | undefined {
    const p = this.held.get(volume)
    if (p !== undefined && p.expires < Date.now()) { this.held.delete(volume); return undefined }
    return p
  }

  private async persist (): Promise<void> {
    if (this.store === undefined) return
    const now = Date.now()
    for (const [v, p] of this.held) if (p.expires < now) this.held.delete(v)
    await this.store.putMeta(PROMISES_KEY, Object.fromEntries(this.held))
  }

  /** Promises `generation` of `vol` to `genId` (persisted first); GENERATION_CONFLICT if it is held or promised otherwise. */
  async take (vol: VolumeRecord, generation: number, genId: string, proposer: string): Promise<void> {
    if (vol.generation >= generation) {
      if (vol.generation === generation && genIdOf(vol) === genId) return
      throw new ConflictError(Codes.GENERATION_CONFLICT, `volume '${vol.name}' is already at generation ${vol.generation} here: nothing changed, retry the change`, { volume: vol.name, generation: vol.generation })
    }
    const p = this.live(vol.name)
    if (p !== undefined && p.genId !== genId && p.generation >= generation) {
      throw new ConflictError(Codes.GENERATION_CONFLICT, `another change of '${vol.name}' (proposed by ${p.proposer}) holds generation ${p.generation}: nothing changed, retry the change`, { volume: vol.name, generation: p.generation })
    }
    const previous = this.held.get(vol.name)
    this.held.set(vol.name, { generation, genId, proposer, expires: Date.now() + this.lifeMs })
    try {
      await this.persist()
    } catch (err) {
      // Not kept, not promised: a promise that a restart could forget must not be answered.
      if (previous === undefined) this.held.delete(vol.name)
      else this.held.set(vol.name, previous)
      throw err
    }
  }

  async release (volume: string, genId: string): Promise<void> {
    if (this.held.get(volume)?.genId !== genId) return
    this.held.delete(volume)
    await this.forget()
  }

  /** The live promise a descriptor of (generation, genId) would break, if any. */
  conflicting (volume: string, generation: number, genId: string): GenerationPromise | undefined {
    const p = this.live(volume)
    return p !== undefined && p.generation === generation && p.genId !== genId ? p : undefined
  }

  /** A generation was adopted: promises up to it are kept or moot (the stored generation refuses the rest). */
  async settle (volume: string, generation: number): Promise<void> {
    const p = this.held.get(volume)
    if (p === undefined || p.generation > generation) return
    this.held.delete(volume)
    await this.forget()
  }

  /** Persists a removal; failing, the promise outlives its need until it expires (safe). */
  private async forget (): Promise<void> {
    await this.persist().catch((err: Error) => { log('promises not persisted: %s', err.message) })
  }
}
