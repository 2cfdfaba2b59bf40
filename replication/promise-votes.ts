import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { requestEnsureVolume, requestProposalOutcome, descriptorOf, type VolumeDescriptor, type PrepareReply, type ProposalQuery, type ProposalOutcome } from '../protocols/control-protocol.js'
import { noVolumeFor } from './member-authorizer.js'
import { ConflictError, NotMemberError, Codes } from '../core/errors.js'
import { genIdOf, type VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'
import { candidateOf } from './generations.js'
import { PromiseRefused, holderOf, replyOf, type GenerationPromise, type GenerationPromises, type PromiseState } from './promises.js'

const log = logger('members')

/** A promise held here, as status shows it. */
export interface PromiseView {
  generation: number
  genId: string
  proposer: string
  state: PromiseState
  since: number | null
  /** When it stops being live (in doubt after). */
  expires: number
  /** The promised configuration's members and write mode (null: not known, a promise kept by an older version). */
  members: string[] | null
  writeMode: string | null
  /** Proposals holding it (the first and any completing it). */
  holders: number
}

export interface PromiseVotesDeps {
  libp2p: Libp2p
  store: Store
  peers: PeerManager
  promises: GenerationPromises
  /** Aborted when the engine stops. */
  signal: AbortSignal
  /** Membership.adopt: takes a member's descriptor of a later generation. */
  adopt: (desc: VolumeDescriptor, from: string) => Promise<VolumeRecord | undefined>
  /** Membership.refuse: reports and keeps a refused change; returns the error. */
  refuse: (volume: string, peer: string, why: string, err: Error) => Error
  /** ReplicaSetChanges.outcomeOf: what became of this node's own proposal `attempt`. */
  outcomeOf: (volume: string, generation: number, attempt: string) => Promise<ProposalOutcome>
}

/**
 * This node's side of the majority rule as a member (docs/CONSISTENCY.md): it answers other
 * members' promise requests, shows its promise in status, and finds out the outcome of a
 * promise in doubt by asking the members (cooperative termination).
 */
export class PromiseVotes {
  private timer: NodeJS.Timeout | undefined
  private asking = false

  constructor (private readonly d: PromiseVotesDeps) {}

  private get selfId (): string { return this.d.libp2p.peerId.toString() }

  /** Asks for the outcomes of promises in doubt every half promise life (500 ms to 15 s). */
  start (): void {
    this.timer = setInterval(() => { void this.askOutcomes() }, Math.max(500, Math.min(15_000, this.d.promises.lifeMs / 2)))
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
  }

  /**
   * A member asks this node to promise the next generation to its proposal `attempt`
   * (promises.ts), or to release that proposal's promise. A refusal is answered with what this
   * node holds: its configuration of that generation (or a later one), or its promise in doubt.
   */
  async prepare (peer: string, desc: VolumeDescriptor, release: boolean, attempt?: string): Promise<PrepareReply> {
    const candidate = candidateOf(desc, undefined)
    const local = await this.d.store.getVolume(candidate.name)
    // Not held here (yet: an offer awaiting the operator): this node does not vote. A
    // non-member that does not name our id gets the same answer, so it learns nothing.
    if (local === undefined || (!local.members.includes(peer) && local.id !== candidate.id)) throw noVolumeFor(candidate.name, peer)
    if (!local.members.includes(peer)) {
      throw this.d.refuse(candidate.name, peer, `${peer} is not a member of the configuration held here`, new NotMemberError(`peer ${peer} is not a member of volume '${candidate.name}' here`))
    }
    if (local.id !== candidate.id) throw new ConflictError(Codes.VOLUME_ID_MISMATCH, `volume '${local.name}' here has another id than the one ${peer} named (unrelated replicas)`)
    const holder = holderOf(peer, attempt)
    if (release) { await this.d.promises.release(local.name, genIdOf(candidate), holder); return { promised: true } }
    try {
      await this.d.promises.take(local, candidate, holder, peer)
      return { promised: true }
    } catch (err) {
      this.d.refuse(local.name, peer, (err as Error).message, err as Error)
      if (!(err instanceof PromiseRefused)) throw err
      return replyOf(err)
    }
  }

  /**
   * A member's question about this node's proposal (ProposalOutcome). Answered to a peer that
   * names the volume's id (a member, or a former one: it held a promise of it); anyone else
   * gets the answer a name not held here gets.
   */
  async outcome (peer: string, q: ProposalQuery): Promise<ProposalOutcome> {
    const local = await this.d.store.getVolume(q.volume)
    if (local === undefined || local.id !== q.volumeId) throw noVolumeFor(q.volume, peer)
    return await this.d.outcomeOf(q.volume, q.generation, q.attempt)
  }

  /**
   * Asks each proposal holding the promise in doubt `p` (its proposer: this node, or one
   * connected) what became of it; one abandoned (it never committed and never will) lets go
   * of the promise, which is dropped with its last holder. A proposer restarted mid-change
   * thus frees its members as soon as they meet it again.
   */
  private async askProposers (local: VolumeRecord, p: GenerationPromise): Promise<void> {
    for (const holder of p.holders ?? []) {
      const cut = holder.lastIndexOf('/')
      const proposer = holder.slice(0, cut)
      const attempt = holder.slice(cut + 1)
      if (cut < 0 || attempt === '') continue
      const q: ProposalQuery = { volume: local.name, volumeId: local.id, generation: p.generation, genId: p.genId, attempt }
      let outcome: ProposalOutcome | undefined
      if (proposer === this.selfId) outcome = await this.d.outcomeOf(q.volume, q.generation, attempt)
      else if (this.d.peers.isConnected(proposer)) {
        outcome = await requestProposalOutcome(this.d.libp2p, peerIdFromString(proposer), q, AbortSignal.any([this.d.signal, AbortSignal.timeout(5_000)])).catch(() => undefined)
      }
      if (outcome !== 'abandoned') continue
      log('volume %s: the proposal of generation %d by %s (attempt %s) was abandoned: its promise here is released', local.name, p.generation, proposer, attempt)
      await this.d.promises.release(local.name, p.genId, holder)
    }
  }

  /** This node's promise of a later generation of `volume`, for status: live, or in doubt (its outcome not known yet). */
  view (volume: string): PromiseView | null {
    const p = this.d.promises.get(volume)
    if (p === undefined) return null
    return {
      generation: p.generation, genId: p.genId, proposer: p.proposer, state: p.state, since: p.since ?? null, expires: p.expires,
      members: p.config?.members ?? null, writeMode: p.config?.writeMode ?? null, holders: p.holders?.length ?? 0
    }
  }

  /**
   * Asks the members of each volume whose promise is in doubt for their configuration (an
   * ensure-volume with ours, which changes nothing there): one that holds the promised
   * generation, or a later one, is adopted, and that settles the promise (cooperative
   * termination). Runs every half promise life; a reconnect does the same through the greeting.
   */
  private async askOutcomes (): Promise<void> {
    if (this.asking || !this.d.store.isOpen) return
    this.asking = true
    try {
      for (const name of this.d.promises.inDoubt()) {
        const local = await this.d.store.getVolume(name)
        const p = this.d.promises.get(name)
        if (local === undefined || p === undefined) continue
        if (p.generation <= local.generation) { await this.d.promises.settle(name, local.generation); continue }
        let settled = false
        for (const m of local.members) {
          if (m === this.selfId || !this.d.peers.isConnected(m)) continue
          const reply = await requestEnsureVolume(this.d.libp2p, peerIdFromString(m), descriptorOf(local), AbortSignal.any([this.d.signal, AbortSignal.timeout(5_000)])).catch(() => undefined)
          const got = reply?.volume !== undefined ? await this.d.adopt(reply.volume, m) : undefined
          if (got !== undefined && got.generation >= p.generation) { settled = true; break }
        }
        if (!settled) await this.askProposers(local, p)
      }
    } catch (err) {
      log('asking the outcome of promises in doubt failed: %s', (err as Error).message)
    } finally {
      this.asking = false
    }
  }
}
