import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { randomBytes } from 'node:crypto'
import { requestEnsureVolume, requestLocate, requestPrepareGeneration, descriptorOf, type VolumeDescriptor, type PrepareReply, type InDoubtPromise, type ProposalOutcome } from '../protocols/control-protocol.js'
import { ConflictError, InvalidInputError, NotFoundError, ReplicantError, Codes, isReplicantError } from '../core/errors.js'
import { genIdOf, readersOf, withReaders, type VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'
import type { AnnounceResult, MembershipHost } from './membership-host.js'
import { nextGeneration } from './generations.js'
import { Superseded, RETRIES, completable, type CompletedChange } from './in-doubt.js'

export type { CompletedChange } from './in-doubt.js'
import { moveTo } from './member-state.js'
import { PromiseRefused, holderOf, replyOf, type GenerationPromises } from './promises.js'
import { InDoubtError, NoQuorumError, describeAnswers, hasQuorum, majorityOf, type MemberAnswer } from './quorum.js'
import type { Decisions } from './decisions.js'
import { requireSeen } from './peer-sighting.js'

const log = logger('members')

export interface ReplicaSetDeps {
  libp2p: Libp2p
  store: Store
  peers: PeerManager
  host: MembershipHost
  /** Takes a member's descriptor if it is of a later generation (Membership.adopt). */
  adopt: (desc: VolumeDescriptor, from: string) => Promise<VolumeRecord | undefined>
  promises: GenerationPromises
  decisions: Decisions
  report?: (line: string) => void
  /** Testing only (MembershipOptions.afterCommit). */
  afterCommit?: (vol: VolumeRecord) => Promise<void>
  /** An announce did not reach `peer`, a member: greet it again soon (greetings.ts). */
  missed?: (volume: string, peer: string) => void
}

// A member that answers with one of these has refused the change; any other failure (no
// answer, an older node) counts as unreachable.
const REFUSALS = new Set<string>([Codes.GENERATION_CONFLICT, Codes.NOT_A_MEMBER, Codes.VOLUME_ID_MISMATCH])


/** A committed change: every member's answer to the promise request, and a warning if it was forced without a majority. */
interface Proposed { volume: VolumeRecord, promises: MemberAnswer[], warning?: string }

/** What a change made here returns: the committed volume and what the members answered. */
export interface ChangeResult { volume: VolumeRecord, announce: AnnounceResult[], promises: MemberAnswer[], warning?: string, completed?: CompletedChange[] }

/** `force`: commit without a majority (the operator accepts the risk of a split generation). */
export interface ChangeOpts { force?: boolean }

/**
 * Changes of a replica set made on this node, online: add and remove members, change the
 * write mode. Each proposes generation g+1: every reachable member of the configuration at g,
 * in peer-id order and this node among them, promises g+1 to this proposal (promises.ts); one
 * refusal and the promises are released, nothing changes and the caller gets
 * GENERATION_CONFLICT (retryable). Fewer promises than a majority of the configuration at g
 * (quorum.ts) and it fails the same way with NO_QUORUM, unless forced. Then it commits here
 * (only if this node is still at g) and is announced; members away learn it when they next
 * meet any member. Taking the promises in one order means that of two changes racing from the
 * same generation, the one that gets the first reachable member wins and the other is refused
 * there; the majority means that two sides of a partition cannot both commit.
 */
export class ReplicaSetChanges {
  /** The attempt ids of the proposals running here (bounded by the changes in flight). */
  private readonly running = new Set<string>()

  constructor (private readonly d: ReplicaSetDeps) {}

  private get selfId (): string { return this.d.libp2p.peerId.toString() }

  /** Creates or updates the volume on every member that can be reached now; the others learn it when next seen. */
  async announce (vol: VolumeRecord, alsoTell: string[] = []): Promise<AnnounceResult[]> {
    const { libp2p, peers } = this.d
    const results: AnnounceResult[] = []
    // Readers are told every change too (grants.ts): they learn the configuration from members.
    const targets = [...new Set([...vol.members, ...readersOf(vol), ...alsoTell])].filter(m => m !== this.selfId)
    await Promise.all(targets.map(async (member) => {
      // A member the announce misses is greeted again while connected; one not connected, when it connects.
      const missed = (): void => { if (vol.members.includes(member)) this.d.missed?.(vol.name, member) }
      if (!await peers.reach(member, async (via, ps) => await requestLocate(libp2p, peerIdFromString(via), ps, AbortSignal.timeout(5_000)))) {
        results.push({ peerId: member, status: 'pending' })
        missed()
        return
      }
      try {
        const reply = await requestEnsureVolume(libp2p, peerIdFromString(member), descriptorOf(vol), AbortSignal.timeout(10_000))
        results.push({ peerId: member, status: reply.created ? 'created' : reply.volume === undefined ? 'pending' : 'exists' })
        if (reply.volume !== undefined) await this.d.adopt(reply.volume, member)
        if (vol.members.includes(member)) this.d.host.schedulePull(vol.name, member)
      } catch (err) {
        results.push({ peerId: member, status: 'refused', error: (err as Error).message })
        missed()
      }
    }))
    return results
  }

  private async requireMember (volume: string): Promise<VolumeRecord> {
    const vol = await this.d.store.getVolume(volume)
    if (vol === undefined) throw new NotFoundError(Codes.VOLUME_NOT_FOUND, `no volume named '${volume}' on this node`, { volume })
    if (!vol.members.includes(this.selfId) || vol.state === 'removed') throw new InvalidInputError(Codes.BAD_REQUEST, `this node is not a member of '${volume}'`)
    return vol
  }

  /**
   * Adds `peer` (which starts as a wannabe) to the replica set of `volume`. A peer this node
   * has never seen is refused with UNKNOWN_PEER unless `force`: a mistyped id would otherwise
   * become a member that never copies and holds back compaction. The same `force` ("I know, do
   * it") also commits without a majority of the current members.
   */
  async addReplica (volume: string, peer: string, opts: ChangeOpts = {}): Promise<ChangeResult> {
    return await this.retrying(async () => {
      try { peerIdFromString(peer) } catch { throw new InvalidInputError(Codes.BAD_REQUEST, `not a peer id: ${peer}`) }
      const vol = await this.requireMember(volume)
      if (vol.members.includes(peer)) throw new ConflictError(Codes.ALREADY_MEMBER, `${peer} is already a member of '${volume}'`)
      await requireSeen(this.d, peer, `add-replica ${volume}`, opts.force === true)
      // A reader made a member is a reader no longer (grants.ts).
      const next = withReaders(nextGeneration(vol, [...vol.members, peer]), readersOf(vol).filter(r => r !== peer))
      await this.probeNewcomer(next, peer)
      const made = await this.propose(vol, next, `add ${peer}`, opts.force === true)
      this.d.host.setRemote(volume, peer, 'copy', made.volume.generation)
      const announce = await this.announce(made.volume)
      return { ...made, volume: await this.d.store.requireVolume(volume), announce }
    })
  }

  /**
   * Asks a reachable newcomer whether it takes the volume from this node (its --accept-volumes):
   * a refusal fails the change before anything is committed, so it can be retried once the
   * newcomer's operator has accepted it. An unreachable newcomer learns it when next seen.
   */
  private async probeNewcomer (next: VolumeRecord, peer: string): Promise<void> {
    const { libp2p, peers } = this.d
    if (!await peers.reach(peer, async (via, ps) => await requestLocate(libp2p, peerIdFromString(via), ps, AbortSignal.timeout(5_000)))) return
    try {
      await requestEnsureVolume(libp2p, peerIdFromString(peer), descriptorOf(next), AbortSignal.timeout(10_000), true)
    } catch (err) {
      if (!isReplicantError(err) || err.code !== Codes.VOLUME_REFUSED) return
      this.d.report?.(`volume ${next.name}: ${peer} refused to hold it: ${err.message}`)
      throw new ReplicantError(Codes.VOLUME_REFUSED, `add-replica ${next.name}: ${peer} refused to hold the volume: ${err.message}`, { volume: next.name, peerId: peer })
    }
  }

  /**
   * A new generation, membership unchanged (a member away past the grace period), through the
   * same promises; never forced. A generation settled otherwise meanwhile (adopted, or a change
   * in doubt completed) serves as well.
   */
  async newGeneration (volume: string, why: string): Promise<VolumeRecord> {
    const vol = await this.requireMember(volume)
    try {
      const { volume: updated } = await this.propose(vol, nextGeneration(vol), why)
      await this.announce(updated)
      return updated
    } catch (err) {
      if (err instanceof Superseded) return await this.d.store.requireVolume(volume)
      throw err
    }
  }

  /**
   * Runs a change; if it settled the next generation otherwise first (Superseded: adopted from
   * a member, or a change in doubt completed), runs it again from there (RETRIES times at most),
   * and says in the result what was settled.
   */
  private async retrying (change: () => Promise<ChangeResult>): Promise<ChangeResult> {
    const completed: CompletedChange[] = []
    for (let i = 0; ; i++) {
      try {
        const r = await change()
        return completed.length > 0 ? { ...r, completed } : r
      } catch (err) {
        if (!(err instanceof Superseded)) throw err
        completed.push(err.done)
        if (i >= RETRIES) {
          throw new ConflictError(Codes.GENERATION_CONFLICT, `${err.message}; but the next generation was settled otherwise ${completed.length} times during this change, which was not made: retry`, { completed })
        }
      }
    }
  }

  /** Changes the write mode of a volume. */
  async setWriteMode (volume: string, writeMode: VolumeRecord['writeMode'], opts: ChangeOpts = {}): Promise<ChangeResult> {
    return await this.retrying(async () => {
      if (writeMode !== 'all' && writeMode !== 'active') throw new InvalidInputError(Codes.BAD_REQUEST, 'write mode must be all or active')
      const vol = await this.requireMember(volume)
      if (vol.writeMode === writeMode) return { volume: vol, announce: [], promises: [] }
      const made = await this.propose(vol, { ...nextGeneration(vol), writeMode }, `write mode ${writeMode}`, opts.force === true)
      const announce = await this.announce(made.volume)
      return { ...made, volume: await this.d.store.requireVolume(volume), announce }
    })
  }

  /**
   * Changes the readers of a volume (grants.ts) as generation g+1, like the changes above:
   * `readers` gives the new list from the current configuration (undefined: nothing to do);
   * `probe` is asked first whether it takes the volume. Every reader, old and new, is told.
   */
  async reconfigure (volume: string, readers: (vol: VolumeRecord) => string[] | undefined, what: string, probe?: string, opts: ChangeOpts = {}): Promise<ChangeResult> {
    return await this.retrying(async () => {
      const vol = await this.requireMember(volume)
      const list = readers(vol)
      if (list === undefined) return { volume: vol, announce: [], promises: [] }
      const next = withReaders(nextGeneration(vol), list)
      if (probe !== undefined) await this.probeNewcomer(next, probe)
      const made = await this.propose(vol, next, what, opts.force === true)
      const announce = await this.announce(made.volume, [...readersOf(vol)])
      return { ...made, volume: await this.d.store.requireVolume(volume), announce }
    })
  }

  /**
   * Removes `peer` from the replica set. The removed node is told (if reachable) and stops
   * serving the volume; it keeps its data, and if it is added again the rejoin rules decide
   * how it catches up.
   */
  async removeReplica (volume: string, peer: string, opts: ChangeOpts = {}): Promise<ChangeResult> {
    return await this.retrying(async () => {
      const vol = await this.requireMember(volume)
      if (!vol.members.includes(peer)) throw new NotFoundError(Codes.MEMBER_NOT_FOUND, `${peer} is not a member of '${volume}'`)
      if (vol.members.length === 1) throw new ConflictError(Codes.LAST_MEMBER, `${peer} is the only member of '${volume}': a volume needs at least one`)
      const made = await this.propose(vol, nextGeneration(vol, vol.members.filter(m => m !== peer)), `remove ${peer}`, opts.force === true)
      this.d.host.forgetRemote(volume, peer)
      const announce = await this.announce(made.volume, [peer])
      log('removed %s from %s: generation %d', peer, volume, made.volume.generation)
      return { ...made, volume: await this.d.store.requireVolume(volume), announce }
    })
  }

  /**
   * The rule of the class comment: promises from a majority of the members of `vol`'s
   * configuration, then a compare-and-set commit of `next` here. Throws GENERATION_CONFLICT
   * (a member refused), NO_QUORUM (too few promised, unless `force`) or GENERATION_IN_DOUBT
   * (two changes in doubt, unless `force`), changing nothing; or Superseded when it settled
   * the next generation otherwise first (a member held it: adopted; or one change in doubt
   * held it: completed), and the caller retries from there. `completing`: this is the
   * completion of a change in doubt (`next` is its configuration, with its own id).
   */
  private async propose (vol: VolumeRecord, next: VolumeRecord, what: string, force = false, completing = false): Promise<Proposed> {
    // This proposal's own name at each member: a release names it, so it never drops a promise
    // another proposal (completing the same change) holds; and a member whose promise is in
    // doubt asks this node whether it is still running (proposalOutcome).
    const attempt = randomBytes(8).toString('hex')
    this.running.add(attempt)
    try {
      return await this.proposeAs(attempt, vol, next, what, force, completing)
    } finally {
      this.running.delete(attempt)
    }
  }

  /**
   * What this node says of its proposal `attempt` of `generation`: running, settled (it holds
   * that generation or a later one) or abandoned (it never committed it and never will: an
   * attempt is never resumed, so one not running now is over). Checked in that order: an
   * attempt that ends between the two checks has already committed, if it did.
   */
  async outcomeOf (volume: string, generation: number, attempt: string): Promise<ProposalOutcome> {
    if (this.running.has(attempt)) return 'running'
    const vol = await this.d.store.getVolume(volume)
    return vol !== undefined && vol.generation >= generation ? 'settled' : 'abandoned'
  }

  private async proposeAs (attempt: string, vol: VolumeRecord, next: VolumeRecord, what: string, force: boolean, completing: boolean): Promise<Proposed> {
    const { libp2p, peers, promises, store } = this.d
    const desc = descriptorOf(next)
    const genId = genIdOf(next)
    const holder = holderOf(this.selfId, attempt)
    const answers: MemberAnswer[] = []
    const release = async (): Promise<void> => {
      await Promise.all(answers.filter(a => a.answer === 'promised').map(async a => {
        if (a.peerId === this.selfId) await promises.release(vol.name, genId, holder).catch(() => {})
        else await requestPrepareGeneration(libp2p, peerIdFromString(a.peerId), desc, true, AbortSignal.timeout(5_000), attempt).catch(() => {})
      }))
    }
    const fail = async (err: ReplicantError, why: string): Promise<never> => {
      await release()
      this.d.report?.(`volume ${vol.name}: change (${what}) not made: ${why}`)
      log.error('volume %s: change (%s) not made: %s', vol.name, what, why)
      this.d.decisions.change(vol.name, this.selfId, 'refused', `${what}: ${why}`)
      throw err
    }
    const doubts: Array<InDoubtPromise & { peerId: string }> = []
    for (const m of [...vol.members].sort()) {
      const self = m === this.selfId ? { self: true as const } : {}
      let reply: PrepareReply
      if (m === this.selfId) {
        try {
          await promises.take(await store.requireVolume(vol.name), next, holder, this.selfId)
          reply = { promised: true }
        } catch (err) {
          // Not a refusal (the promise could not be persisted): what was taken is given back.
          if (!(err instanceof PromiseRefused)) { await release(); throw err }
          reply = replyOf(err)
        }
      } else {
        if (!await peers.reach(m, async (via, ps) => await requestLocate(libp2p, peerIdFromString(via), ps, AbortSignal.timeout(5_000)))) {
          answers.push({ peerId: m, answer: 'unreachable', error: 'not reachable now' })
          continue
        }
        try {
          reply = await requestPrepareGeneration(libp2p, peerIdFromString(m), desc, false, AbortSignal.timeout(10_000), attempt)
        } catch (err) {
          if (!(isReplicantError(err) && REFUSALS.has(err.code))) {
            answers.push({ peerId: m, answer: 'unreachable', error: (err as Error).message })
            continue
          }
          reply = { promised: false, code: err.code, message: err.message }
        }
      }
      if (reply.promised) {
        answers.push({ peerId: m, answer: 'promised', ...self })
        continue
      }
      if (reply.inDoubt !== undefined && !completing && reply.inDoubt.generation === next.generation) {
        // Not a refusal yet: whether that change may have been committed is decided below, from a majority of answers.
        answers.push({ peerId: m, answer: 'in-doubt', error: reply.message, inDoubt: { genId: reply.inDoubt.genId, proposer: reply.inDoubt.proposer }, ...self })
        doubts.push({ ...reply.inDoubt, peerId: m })
        continue
      }
      answers.push({ peerId: m, answer: 'refused', error: reply.message, ...self })
      const why = `${m === this.selfId ? 'this node' : m} refused generation ${next.generation}: ${reply.message}`
      if (reply.committed !== undefined) {
        // That member (or this node) already holds generation g+1 or later: adopt it and retry from it.
        await release()
        const got = m === this.selfId ? await store.requireVolume(vol.name) : await this.d.adopt(reply.committed, m)
        if (got !== undefined && got.generation >= next.generation) {
          throw new Superseded(`generation ${got.generation} of '${vol.name}' was already made (${m === this.selfId ? 'here' : `held by ${m}`}, members ${got.members.join(', ')}): adopted; the change (${what}) is retried from it`,
            { generation: got.generation, genId: genIdOf(got), members: got.members, how: 'adopted', from: m })
        }
      }
      await fail(new ConflictError(Codes.GENERATION_CONFLICT, `change of '${vol.name}' (${what}) not made: ${why}; nothing changed, retry`, { volume: vol.name, refusedBy: m, answers }), why)
    }
    const quorum = hasQuorum(answers, vol.members.length)
    if (!quorum && doubts.length > 0) await this.settleDoubts(vol, what, next.generation, answers, doubts, force, release, fail)
    if (!quorum && !force) {
      await fail(new NoQuorumError(vol.name, what, next.generation, vol.members.length, answers, this.selfId), `no majority of the ${vol.members.length} members: ${describeAnswers(answers, this.selfId)}`)
    }
    // No deadline on the commit: a promise past its life is in doubt, not dropped, so a late
    // commit meets no second majority; another proposer may only complete this same change.
    const overridden = doubts.length > 0 ? `, over changes in doubt (${doubts.map(d => `${d.peerId}: id ${d.genId} proposed by ${d.proposer}`).join('; ')})` : ''
    const warning = quorum ? undefined : `forced without a majority of the ${vol.members.length} members (${describeAnswers(answers, this.selfId)})${overridden}: a member that could not be reached may make another change of generation ${next.generation}; the two are then refused with GENERATION_CONFLICT when they meet`
    let updated: VolumeRecord
    try {
      updated = await store.updateVolume(vol.name, v => {
        if (v.generation !== vol.generation || genIdOf(v) !== genIdOf(vol)) {
          throw new ConflictError(Codes.GENERATION_CONFLICT, `volume '${vol.name}' moved on to generation ${v.generation} during the change (${what}): nothing changed, retry`)
        }
        const committed = withReaders({ ...v, generation: next.generation, genId, members: next.members, writeMode: next.writeMode, history: next.history }, next.readers)
        return next.members.includes(this.selfId) ? committed : moveTo(committed, 'removed')
      })
    } catch (err) {
      await release()
      throw err
    }
    await promises.settle(vol.name, updated.generation)
    this.d.host.reconfigured(updated)
    await this.d.afterCommit?.(updated)
    if (warning !== undefined) {
      this.d.report?.(`volume ${vol.name}: change (${what}) ${warning}`)
      log.error('volume %s: change (%s) %s', vol.name, what, warning)
    }
    this.d.decisions.change(vol.name, this.selfId, 'accepted', `${what}: generation ${updated.generation}, members ${updated.members.join(', ')}${warning !== undefined ? ' (forced without a majority)' : ''}`)
    return { volume: updated, promises: answers, ...(warning !== undefined ? { warning } : {}) }
  }

  /**
   * Too few promises, and some members hold g+1 promised in doubt to other changes. If the
   * members that answered (promised or in doubt) are a majority: one change in doubt is the
   * only one that can have been committed (a committed change's promisers meet every
   * majority), so it is completed (Superseded is thrown); two or more and it cannot tell
   * which, so GENERATION_IN_DOUBT unless `force`. Fewer answers: returns (NO_QUORUM follows).
   */
  private async settleDoubts (vol: VolumeRecord, what: string, generation: number, answers: MemberAnswer[], doubts: Array<InDoubtPromise & { peerId: string }>,
    force: boolean, release: () => Promise<void>, fail: (err: ReplicantError, why: string) => Promise<never>): Promise<void> {
    const answered = answers.filter(a => a.answer === 'promised' || a.answer === 'in-doubt').length
    if (answered < majorityOf(vol.members.length)) return
    const ids = new Set(doubts.map(d => d.genId))
    const config = ids.size === 1 ? completable(vol, doubts) : undefined
    if (config !== undefined) {
      await release()
      const proposer = doubts[0].proposer
      this.d.report?.(`volume ${vol.name}: generation ${config.generation} is promised in doubt to a change proposed by ${proposer} (members ${config.members.join(', ')}); completing it before this change (${what})`)
      log('volume %s: completing generation %d (%s) proposed by %s before %s', vol.name, config.generation, genIdOf(config), proposer, what)
      const made = await this.propose(vol, config, `complete generation ${config.generation} proposed by ${proposer}`, false, true)
      await this.announce(made.volume, vol.members.filter(m => !made.volume.members.includes(m)))
      throw new Superseded(`generation ${config.generation} of '${vol.name}' was in doubt (proposed by ${proposer}): completed here; the change (${what}) is retried from it`,
        { generation: made.volume.generation, genId: genIdOf(made.volume), members: made.volume.members, how: 'completed', from: proposer })
    }
    if (!force) {
      await fail(new InDoubtError(vol.name, what, generation, answers, this.selfId), `generation ${generation} in doubt: ${describeAnswers(answers, this.selfId)}`)
    }
  }
}
