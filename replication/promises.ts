import { ConflictError, Codes } from '../core/errors.js'
import { genIdOf, type VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import { descriptorOf, type VolumeDescriptor, type PrepareReply } from '../protocols/control-protocol.js'

const log = logger('members')

/** A promise not confirmed in this long is in doubt: its proposer died, was cut off, or is slow. */
export const PROMISE_MS = 30_000

/** Store meta key of the promises held (one per volume at most, so the record stays small). */
export const PROMISES_KEY = 'generation-promises'

/** Proposals that may hold one promise together (the first proposer and those completing it). */
const MAX_HOLDERS = 8

export interface GenerationPromise {
  generation: number
  genId: string
  /** Who asked for it first. */
  proposer: string
  /** Until then live; after it, in doubt (kept until the generation's outcome is known). */
  expires: number
  /** When it was first taken. */
  since?: number
  /** The configuration promised: an in-doubt promise is completed from it (replica-set.ts). */
  config?: VolumeDescriptor
  /** The proposals holding it (`proposer/attempt`); it is dropped when the last releases it. */
  holders?: string[]
}

/**
 * The states of one volume's promise here, and what moves it:
 *
 * | state    | meaning                                  | leaves it                                                  |
 * | -------- | ---------------------------------------- | ---------------------------------------------------------- |
 * | none     | no promise of a later generation         | take -> live                                               |
 * | live     | taken less than `lifeMs` ago             | time -> in doubt; take (same id) -> live; release by its last holder -> none; adopting its generation or a later one -> none |
 * | in doubt | its proposer did not confirm it in time  | take (same id: a completion) -> live; release by its last holder -> none; adopting its generation (any committed configuration of it) or a later one -> none |
 *
 * A promise never simply expires: a proposer may have committed it and been cut off before its
 * announce, and a member that forgot its promise could then help a second majority commit
 * another configuration of the same generation (docs/CONSISTENCY.md).
 */
export type PromiseState = 'live' | 'in-doubt'

/** Why a promise was not given: `committed` (the member holds that generation or a later one), `in-doubt`, or `live` (another change holds it). */
export class PromiseRefused extends ConflictError {
  constructor (readonly kind: 'committed' | PromiseState, message: string, readonly held?: VolumeDescriptor, readonly promise?: GenerationPromise) {
    super(Codes.GENERATION_CONFLICT, message, { kind })
    this.name = 'PromiseRefused'
  }
}

/** The holder name of one proposal: its proposer and the attempt's random id (older nodes send none). */
export function holderOf (proposer: string, attempt: string | undefined): string {
  return `${proposer}/${attempt ?? ''}`
}

/** The answer to a proposer that a refusal makes: what this node holds (its configuration, or its promise in doubt). */
export function replyOf (err: PromiseRefused): PrepareReply {
  const p = err.promise
  return {
    promised: false, code: err.code, message: err.message,
    ...(err.held !== undefined ? { committed: err.held } : {}),
    ...(err.kind === 'in-doubt' && p !== undefined ? { inDoubt: { generation: p.generation, genId: p.genId, proposer: p.proposer, ...(p.config !== undefined ? { config: p.config } : {}) } } : {})
  }
}

/** Where promises are kept across restarts (the store's metadata, synced writes). */
export interface PromiseStore {
  getMeta: <T>(key: string) => Promise<T | undefined>
  putMeta: (key: string, value: unknown) => Promise<void>
}

/**
 * One configuration per generation: before a change commits, a majority of the members of
 * the configuration it changes promises the proposed generation to that one generation id,
 * and each refuses any other id for it until the promise is confirmed (a configuration of
 * that generation adopted) or released by every proposal holding it. Promises are persisted
 * before they are answered: a member restarted between a promise and the commit would
 * otherwise promise the generation a second time, and two majorities could then hold two
 * configurations (docs/CONSISTENCY.md).
 */
export class GenerationPromises {
  private readonly held = new Map<string, GenerationPromise>()

  /** `lifeMs`: how long a promise is live unconfirmed (PROMISE_MS; tests shorten it). */
  constructor (private readonly store?: PromiseStore, readonly lifeMs = PROMISE_MS) {}

  /** Reads the promises kept by the last run: all of them, live or in doubt. */
  async load (): Promise<void> {
    const kept = await this.store?.getMeta<Record<string, GenerationPromise>>(PROMISES_KEY)
    for (const [volume, p] of Object.entries(kept ?? {})) {
      if (typeof p?.generation !== 'number' || typeof p.genId !== 'string' || typeof p.expires !== 'number') continue
      const holders = Array.isArray(p.holders) ? p.holders.filter((h): h is string => typeof h === 'string') : [holderOf(String(p.proposer), undefined)]
      this.held.set(volume, {
        generation: p.generation, genId: p.genId, proposer: String(p.proposer), expires: p.expires, holders,
        ...(typeof p.since === 'number' ? { since: p.since } : {}),
        ...(p.config !== null && typeof p.config === 'object' ? { config: p.config } : {})
      })
    }
  }

  /** The promise held for `volume` and whether it is live or in doubt. */
  get (volume: string): (GenerationPromise & { state: PromiseState }) | undefined {
    const p = this.held.get(volume)
    return p === undefined ? undefined : { ...p, state: p.expires < Date.now() ? 'in-doubt' : 'live' }
  }

  /** Volumes whose promise is in doubt (their members are asked for the outcome). */
  inDoubt (): string[] {
    const now = Date.now()
    return [...this.held].filter(([, p]) => p.expires < now).map(([v]) => v)
  }

  private async persist (): Promise<void> {
    if (this.store === undefined) return
    await this.store.putMeta(PROMISES_KEY, Object.fromEntries(this.held))
  }

  /**
   * Promises `next`'s generation of `vol` to its id for the proposal `holder` (persisted
   * first); PromiseRefused if this node holds that generation (or a later one), or a promise
   * of it to another id.
   */
  async take (vol: VolumeRecord, next: VolumeRecord, holder: string, proposer: string): Promise<void> {
    const { generation } = next
    const genId = genIdOf(next)
    if (vol.generation >= generation) {
      if (vol.generation === generation && genIdOf(vol) === genId) return
      throw new PromiseRefused('committed', `volume '${vol.name}' is already at generation ${vol.generation} here: nothing changed, retry the change`, descriptorOf(vol))
    }
    const p = this.get(vol.name)
    if (p !== undefined && p.genId !== genId && p.generation >= generation) {
      if (p.state === 'live' || p.generation > generation) {
        throw new PromiseRefused('live', `another change of '${vol.name}' (proposed by ${p.proposer}) holds generation ${p.generation}: nothing changed, retry the change`, undefined, p)
      }
      throw new PromiseRefused('in-doubt', `generation ${p.generation} of '${vol.name}' is promised here to a change proposed by ${p.proposer} (id ${p.genId}) whose outcome is not known (in doubt since ${new Date(p.expires).toISOString()})`, undefined, p)
    }
    if (p !== undefined && p.generation > vol.generation && p.generation < generation) {
      // A proposer already past the generation promised here: this node has not learnt its
      // outcome yet. Dropping the promise for a later one could free a majority for a second
      // configuration of it; this node adopts it first (the proposer's greeting carries it).
      throw new PromiseRefused('live', `volume '${vol.name}' here is at generation ${vol.generation} with generation ${p.generation} promised (proposed by ${p.proposer}) and not adopted yet: nothing changed, retry once this node has caught up`, undefined, p)
    }
    const previous = this.held.get(vol.name)
    const same = previous !== undefined && previous.genId === genId && previous.generation === generation
    const holders = same ? [...new Set([...(previous.holders ?? []), holder])] : [holder]
    if (holders.length > MAX_HOLDERS) throw new PromiseRefused('live', `generation ${generation} of '${vol.name}' is held by ${MAX_HOLDERS} proposals already: retry later`, undefined, previous)
    this.held.set(vol.name, {
      generation, genId, proposer: same ? previous.proposer : proposer, expires: Date.now() + this.lifeMs, since: same ? previous.since ?? Date.now() : Date.now(),
      config: descriptorOf(next), holders
    })
    try {
      await this.persist()
    } catch (err) {
      // Not kept, not promised: a promise that a restart could forget must not be answered.
      if (previous === undefined) this.held.delete(vol.name)
      else this.held.set(vol.name, previous)
      throw err
    }
  }

  /** The proposal `holder` gives up its promise of `genId` (it did not commit and never will); dropped with its last holder. */
  async release (volume: string, genId: string, holder: string): Promise<void> {
    const p = this.held.get(volume)
    if (p?.genId !== genId) return
    const holders = (p.holders ?? []).filter(h => h !== holder)
    if (holders.length === (p.holders ?? []).length) return
    if (holders.length > 0) this.held.set(volume, { ...p, holders })
    else this.held.delete(volume)
    await this.forget()
  }

  /**
   * The live promise a configuration (generation, genId) would break, if any. An in-doubt
   * promise gives way: a configuration held by a member is a committed one, the only one of
   * its generation, so the promise in doubt was not committed (and never will be).
   */
  conflicting (volume: string, generation: number, genId: string): GenerationPromise | undefined {
    const p = this.get(volume)
    return p !== undefined && p.state === 'live' && p.generation === generation && p.genId !== genId ? p : undefined
  }

  /** A generation was adopted: promises up to it are kept or moot (the stored generation refuses the rest). */
  async settle (volume: string, generation: number): Promise<void> {
    const p = this.held.get(volume)
    if (p === undefined || p.generation > generation) return
    this.held.delete(volume)
    await this.forget()
  }

  /** Persists a removal; failing, the promise outlives its need (safe: it only refuses). */
  private async forget (): Promise<void> {
    await this.persist().catch((err: Error) => { log('promises not persisted: %s', err.message) })
  }
}
