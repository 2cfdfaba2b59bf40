import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { requestMemberState, requestLocate, descriptorOf, type VolumeDescriptor, type MemberState, type EnsureResult, type PrepareReply, type ProposalQuery, type ProposalOutcome } from '../protocols/control-protocol.js'
import { noVolumeFor } from './member-authorizer.js'
import { memberStateReply } from './member-state-reply.js'
import { ConflictError, NotMemberError, Codes } from '../core/errors.js'
import { genIdOf, mergeHistory, holds, readersOf, withReaders, type VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'
import type { AnnounceResult, MembershipHost } from './membership-host.js'
import { adopted, initialState, type MemberStates } from './member-state.js'
import { later, candidateOf } from './generations.js'
import { Decisions, type DecisionView, type ChangeView } from './decisions.js'
import { ReplicaSetChanges, type ChangeOpts, type ChangeResult } from './replica-set.js'
import { Grants } from './grants.js'
import { GraceWatch } from './grace.js'
import { Greetings } from './greetings.js'
import { GenerationPromises } from './promises.js'
import { PromiseVotes, type PromiseView } from './promise-votes.js'
import { VolumeAcceptance } from './volume-acceptance.js'
import type { CopyOffer, MembershipOptions } from './membership-options.js'

export { historyOf, nextGeneration } from './generations.js'
export type { DecisionView, ChangeView } from './decisions.js'
export type { AnnounceResult, MembershipHost } from './membership-host.js'
export type { ChangeOpts, ChangeResult, CompletedChange } from './replica-set.js'
export type { PromiseView } from './promise-votes.js'

export type { CopyOffer, CopyApproval, MembershipOptions } from './membership-options.js'

const log = logger('members')

/** Default: a member unreachable this long starts a new generation on the members that remain. */
export const DEFAULT_GRACE_MS = 10 * 60_000

/**
 * Who holds a volume, at which generation, and what a member does when it meets another:
 * create on request (a newcomer starts as a wannabe in `copy`), adopt a later generation,
 * add and remove members online, start a new generation when a member stays away past the
 * grace period, and decide on every (re)connect between nothing, minicopy, full copy and
 * refusal (rejoin-rules.ts, docs/CONSISTENCY.md).
 */
export class Membership {
  readonly refusals = new Map<string, string>()
  readonly promises: GenerationPromises
  readonly acceptance: VolumeAcceptance
  readonly graceMs: number
  /** Granted readers: grant, revoke, and the greeting between a member and a reader (grants.ts). */
  readonly grants: Grants
  private readonly changes: ReplicaSetChanges
  private readonly grace: GraceWatch
  private readonly votes: PromiseVotes
  /** The greeting between members, retried while a failed one's peer stays connected (greetings.ts). */
  private readonly greetings: Greetings

  constructor (
    private readonly libp2p: Libp2p,
    private readonly store: Store,
    private readonly peers: PeerManager,
    private readonly engine: MembershipHost,
    private readonly states: MemberStates,
    private readonly decisions: Decisions = new Decisions(),
    private readonly opts: MembershipOptions = {}
  ) {
    this.graceMs = opts.graceMs ?? DEFAULT_GRACE_MS
    this.promises = new GenerationPromises(store, opts.promiseMs)
    this.votes = new PromiseVotes({
      libp2p, store, peers, promises: this.promises, signal: engine.signal,
      adopt: async (desc, from) => await this.adopt(desc, from),
      refuse: (v, p, why, err) => this.refuse(v, p, why, err),
      outcomeOf: async (volume, generation, attempt) => await this.changes.outcomeOf(volume, generation, attempt)
    })
    this.acceptance = new VolumeAcceptance(libp2p, store, peers, opts)
    this.changes = new ReplicaSetChanges({ libp2p, store, peers, host: engine, adopt: async (desc, from) => await this.adopt(desc, from), promises: this.promises, report: this.opts.report, decisions, afterCommit: opts.afterCommit, missed: (v, p) => { this.greetings.failed(v, p) } })
    this.grants = new Grants({ libp2p, store, changes: this.changes, host: engine })
    this.greetings = new Greetings({
      libp2p, store, peers, engine, states, opts, refusals: this.refusals,
      adopt: async (desc, from) => await this.adopt(desc, from),
      record: (v, p, d, w) => { this.record(v, p, d, w) },
      seen: p => { this.grace.seen(p) }
    })
    this.grace = new GraceWatch({ libp2p, store, peers, graceMs: this.graceMs, bump: async (vol, why) => await this.changes.newGeneration(vol, why), record: (v, p, d, w) => { this.record(v, p, d, w) }, report: opts.report })
  }

  private get selfId (): string { return this.libp2p.peerId.toString() }

  /** Volumes held offline on this node (a refused full copy), with the reason. */
  get offline (): ReadonlyMap<string, string> { return this.states.offline }

  /** Reads the promises kept across a restart (before any request is answered), then watches absences. */
  async start (): Promise<void> {
    await this.promises.load()
    this.grace.start()
    this.votes.start()
    this.greetings.start()
  }

  stop (): void {
    this.grace.stop()
    this.votes.stop()
    this.greetings.stop()
  }

  private discardAllowed (volume: string): boolean {
    const d = this.opts.discardLocal
    return d === true || (Array.isArray(d) && d.includes(volume))
  }

  // ---- requests from other members ----

  /**
   * A peer asks this node to hold a volume (at creation, after a change, or when it greets us).
   * Only a member of the configuration held here may change it (the proposal's own member list
   * proves nothing); a volume new here is created when the proposer lists itself and this node.
   * A non-member learns nothing from the refusal, not even the volume id. Every change accepted
   * or refused is reported and kept for status with its proposer.
   */
  async ensureVolume (peer: string, desc: VolumeDescriptor, probe = false): Promise<EnsureResult> {
    const candidate = candidateOf(desc, initialState('requested'))
    const local = await this.store.getVolume(candidate.name)
    const member = local?.members.includes(peer) === true
    if (local === undefined || (!member && local.id !== candidate.id && !this.trusted(peer))) {
      // Unsolicited volumes (volume-acceptance.ts); the answer is the same whether the name is held here or not.
      const refused = await this.acceptance.refusal(candidate, peer)
      if (refused !== undefined) throw this.refuse(candidate.name, peer, refused.why, refused.error)
      if (probe) return { created: false }
      // A name held here with another id, from a non-member, is answered as a name not held here.
      let why = 'a volume is created here only by a member that lists itself and this node'
      if (local !== undefined) {
        why = `peer ${peer}, not a member here, has volume '${candidate.name}' with id ${candidate.id}; this node holds id ${local.id}: unrelated replicas, nothing exchanged`
        this.refusals.set(candidate.name, why)
      }
      if (local !== undefined || !holds(candidate, this.selfId) || !candidate.members.includes(peer)) {
        throw this.refuse(candidate.name, peer, why, noVolumeFor(candidate.name, peer))
      }
      return await this.createRequested(candidate, peer)
    }
    if (probe) return { created: false }
    if (!member && local.id === candidate.id) throw this.refuse(candidate.name, peer, `${peer} is not a member of the configuration held here (generation ${local.generation})`, new NotMemberError(`peer ${peer} is not a member of volume '${candidate.name}' here`))
    if (local.id !== candidate.id) return await this.foreignReplica(local, candidate, peer)
    if (candidate.generation < local.generation || (candidate.generation === local.generation && genIdOf(candidate) === genIdOf(local))) {
      return { created: false, volume: descriptorOf(local) }
    }
    const promised = this.promises.conflicting(local.name, candidate.generation, genIdOf(candidate))
    if (candidate.generation === local.generation || promised !== undefined) {
      const why = promised !== undefined
        ? `generation ${candidate.generation} is promised to another change (proposed by ${promised.proposer})`
        : `this node already holds generation ${local.generation} with another configuration (id ${genIdOf(local)}); one configuration per generation`
      throw this.refuse(local.name, peer, why, new ConflictError(Codes.GENERATION_CONFLICT, `volume '${local.name}': ${why}: nothing changed, retry the change`))
    }
    const current = await this.adopt(desc, peer) ?? local
    return { created: false, volume: descriptorOf(current) }
  }

  /** A member asks this node to promise the next generation to its proposal, or to release it (promise-votes.ts). */
  async prepareGeneration (peer: string, desc: VolumeDescriptor, release: boolean, attempt?: string): Promise<PrepareReply> {
    return await this.votes.prepare(peer, desc, release, attempt)
  }

  /** A member holding a promise in doubt asks what became of this node's proposal (promise-votes.ts). */
  async proposalOutcome (peer: string, q: ProposalQuery): Promise<ProposalOutcome> { return await this.votes.outcome(peer, q) }

  /** This node's promise of a later generation of `volume`, for status (promise-votes.ts). */
  promiseOf (volume: string): PromiseView | null { return this.votes.view(volume) }

  /** Creates the volume here; its members are no strangers to the request limits from now on. */
  private async createLocal (candidate: Parameters<Store['createVolume']>[0]): Promise<void> {
    await this.store.createVolume(candidate)
    this.engine.reconfigured(candidate)
  }

  private trusted (peer: string): boolean {
    return this.opts.trusted?.includes(peer) === true
  }

  /** Reports and keeps a refused change; returns `err` to throw. */
  private refuse (volume: string, peer: string, why: string, err: Error): Error {
    this.opts.report?.(`volume ${volume}: refused a membership change proposed by ${peer}: ${why}`)
    log.error('volume %s: refused a membership change proposed by %s: %s', volume, peer, why)
    this.decisions.change(volume, peer, 'refused', why)
    return err
  }

  private async createRequested (candidate: VolumeRecord, peer: string): Promise<EnsureResult> {
    if (this.opts.approveCopy !== undefined) {
      // Asking may take a person a while: answer now, create once approved.
      this.offerNewVolume(candidate, peer)
      return { created: false }
    }
    // Two members telling this node one new configuration at once: the later is answered as for a volume held.
    try { await this.createLocal(candidate) } catch (err) { if ((err as { code?: string }).code === Codes.VOLUME_EXISTS) return await this.ensureVolume(peer, descriptorOf(candidate)); throw err }
    await this.acceptance.consume(candidate.name, peer)
    log('created volume %s (%s) at the request of %s, as a wannabe', candidate.name, candidate.id, peer)
    this.accepted(candidate, peer, 'created here as a new member (wannabe)')
    this.engine.forgetRemote(candidate.name, peer)
    this.engine.schedulePull(candidate.name, peer, 'copy')
    this.engine.kickCopy(candidate.name)
    this.meet(candidate, m => m !== peer)
    return { created: true, volume: descriptorOf(candidate) }
  }

  private accepted (vol: VolumeRecord, peer: string, what: string): void {
    const line = `generation ${vol.generation}, members ${vol.members.join(', ')}: ${what}`
    this.opts.report?.(`volume ${vol.name}: accepted a membership change proposed by ${peer}: ${line}`)
    this.decisions.change(vol.name, peer, 'accepted', line)
  }

  /** A replica with another id: refused, or with --discard-local (from a member or a --join peer) deleted and recopied. */
  private async foreignReplica (local: VolumeRecord, candidate: VolumeRecord, peer: string): Promise<EnsureResult> {
    if (this.discardAllowed(candidate.name)) {
      const size = await this.store.volumeSize(candidate.name)
      this.opts.report?.(`--discard-local: deleting this node's replica of volume ${candidate.name} (id ${local.id}): ${size.files} files, ${size.bytes} bytes; it will be fully recopied as id ${candidate.id} from ${peer}`)
      const gone = await this.store.deleteVolume(candidate.name)
      log.error('--discard-local: deleted the foreign replica of %s (id %s): %d files, %d bytes; recopying id %s from %s',
        candidate.name, local.id, gone.files, gone.bytes, candidate.id, peer)
      this.refusals.set(candidate.name, `discarded a foreign replica (id ${local.id}, ${gone.files} files, ${gone.bytes} bytes) for id ${candidate.id} from ${peer}`)
      await this.createLocal(candidate)
      this.accepted(candidate, peer, `--discard-local: replaced the replica with id ${local.id}`)
      this.engine.schedulePull(candidate.name, peer, 'copy')
      this.engine.kickCopy(candidate.name)
      return { created: true, volume: descriptorOf(candidate) }
    }
    const why = `peer ${peer} has volume '${candidate.name}' with id ${candidate.id}; this node holds id ${local.id}: unrelated replicas, nothing exchanged (start with --discard-local to delete this node's replica and copy the peer's)`
    if (this.refusals.get(candidate.name) !== why) this.opts.report?.(`refused: ${why}`)
    this.refusals.set(candidate.name, why)
    this.record(candidate.name, peer, 'refused', why)
    throw new ConflictError(Codes.VOLUME_ID_MISMATCH, `volume '${candidate.name}' here has another id than ${candidate.id} (unrelated replicas)`)
  }

  private readonly offers = new Set<string>()

  private offerNewVolume (candidate: VolumeRecord, peer: string): void {
    if (this.offers.has(candidate.name)) return
    this.offers.add(candidate.name)
    void (async () => {
      try {
        const size = await requestMemberState(this.libp2p, peerIdFromString(peer), candidate.name, candidate.id, this.engine.signal, true)
          .then(s => s.size, () => undefined)
        const offer: CopyOffer = { volume: candidate.name, volumeId: candidate.id, peer, files: size?.files ?? null, bytes: size?.bytes ?? null, why: 'new member: full copy of the volume' }
        if (!await this.greetings.approve(offer, peer)) return
        if (await this.store.getVolume(candidate.name) !== undefined) return
        await this.createLocal(candidate)
        await this.acceptance.consume(candidate.name, peer)
        this.record(candidate.name, peer, 'copy', 'new member (wannabe): full copy approved by the operator')
        this.engine.schedulePull(candidate.name, peer, 'copy')
        this.engine.kickCopy(candidate.name)
      } catch (err) {
        log('offer of %s from %s failed: %s', candidate.name, peer, (err as Error).message)
      } finally {
        this.offers.delete(candidate.name)
      }
    })()
  }

  /**
   * Takes a descriptor of a later generation from `from`, a member of the configuration held
   * here (from anyone else it is ignored), unless the generation is promised to another change.
   */
  async adopt (desc: VolumeDescriptor, from: string): Promise<VolumeRecord | undefined> {
    let candidate: VolumeRecord
    try { candidate = candidateOf(desc, undefined) } catch { return undefined }
    const local = await this.store.getVolume(candidate.name)
    if (local === undefined || local.id !== candidate.id || !later(candidate, local)) return undefined
    if (!local.members.includes(from) || this.promises.conflicting(local.name, candidate.generation, genIdOf(candidate)) !== undefined) return undefined
    const member = candidate.members.includes(this.selfId)
    const updated = await this.store.updateVolume(local.name, v => {
      if (!later(candidate, v)) return v
      const current = { generation: candidate.generation, genId: genIdOf(candidate) }
      return withReaders({
        ...adopted(v, member || readersOf(candidate).includes(this.selfId)), generation: candidate.generation, genId: current.genId, members: candidate.members, writeMode: candidate.writeMode,
        history: mergeHistory(current, v.history, candidate.history, [{ generation: v.generation, genId: genIdOf(v) }])
      }, candidate.readers)
    })
    await this.promises.settle(updated.name, updated.generation)
    this.engine.reconfigured(updated)
    log('volume %s: generation %d, members %o%s', updated.name, updated.generation, updated.members, member ? '' : ' (this node was removed)')
    if (from !== this.selfId) this.accepted(updated, from, member ? 'adopted' : 'adopted: this node is no longer a member')
    if (member && local.state === 'removed') this.engine.relisted(updated)
    // Greet the members that are new to us; all of them if we have just become a member.
    const wasMember = local.members.includes(this.selfId) && local.state !== 'removed'
    if (member) this.meet(updated, m => !(wasMember && local.members.includes(m)))
    return updated
  }

  /**
   * Greets the members of `vol` that `which` picks. One not connected is located through our
   * peers and dialled (the connection itself triggers the greeting): a member created here by
   * one member thus meets the others, whose addresses it may not know yet.
   */
  private meet (vol: VolumeRecord, which: (member: string) => boolean): void {
    for (const m of vol.members) {
      if (m === this.selfId || !which(m)) continue
      if (this.peers.isConnected(m)) void this.greet(m, vol.name)
      else void this.peers.reach(m, async (via, ps) => await requestLocate(this.libp2p, peerIdFromString(via), ps, AbortSignal.timeout(5_000)))
    }
  }

  /** A member's request for this node's state of a volume (member-state-reply.ts). */
  async memberState (peer: string, volume: string, volumeId: string, withSize: boolean): Promise<MemberState> {
    return await memberStateReply({ store: this.store, selfId: this.selfId, host: this.engine, states: this.states }, peer, volume, volumeId, withSize)
  }

  // ---- changes made here (replica-set.ts) ----

  /** Creates or updates the volume on every member that can be reached now; the others learn it when next seen. */
  async announce (vol: VolumeRecord, alsoTell: string[] = []): Promise<AnnounceResult[]> {
    return await this.changes.announce(vol, alsoTell)
  }

  async addReplica (volume: string, peer: string, opts: ChangeOpts = {}): Promise<ChangeResult> {
    return await this.changes.addReplica(volume, peer, opts)
  }

  async setWriteMode (volume: string, writeMode: VolumeRecord['writeMode'], opts: ChangeOpts = {}): Promise<ChangeResult> {
    return await this.changes.setWriteMode(volume, writeMode, opts)
  }

  async removeReplica (volume: string, peer: string, opts: ChangeOpts = {}): Promise<ChangeResult> {
    return await this.changes.removeReplica(volume, peer, opts)
  }

  /**
   * The greeting when a member connects (or is added, or an announce missed it): greetings.ts.
   */
  async greet (peer: string, only?: string): Promise<void> {
    await this.greetings.greet(peer, only)
  }

  private record (volume: string, peer: string, decision: string, why: string): void {
    this.decisions.record(volume, peer, decision, why)
  }

  decisionsFor (volume: string): DecisionView[] {
    return this.decisions.forVolume(volume)
  }

  changesFor (volume: string): ChangeView[] {
    return this.decisions.changesFor(volume)
  }
}
