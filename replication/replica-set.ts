import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { requestEnsureVolume, requestLocate, requestPrepareGeneration, descriptorOf, type VolumeDescriptor } from '../protocols/control-protocol.js'
import { ConflictError, InvalidInputError, NotFoundError, ReplicantError, Codes, isReplicantError } from '../core/errors.js'
import { genIdOf, readersOf, withReaders, type VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'
import type { AnnounceResult, MembershipHost } from './membership-host.js'
import { nextGeneration } from './generations.js'
import { moveTo } from './member-state.js'
import type { GenerationPromises } from './promises.js'
import { NoQuorumError, describeAnswers, hasQuorum, type MemberAnswer } from './quorum.js'
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
}

// A member that answers with one of these has refused the change; any other failure (no
// answer, an older node) counts as unreachable.
const REFUSALS = new Set<string>([Codes.GENERATION_CONFLICT, Codes.NOT_A_MEMBER, Codes.VOLUME_ID_MISMATCH])

// Left of a promise's life when the commit starts: the commit and its announce fit in it.
const promiseMarginMs = (lifeMs: number): number => Math.min(10_000, lifeMs / 3)

/** A committed change: every member's answer to the promise request, and a warning if it was forced without a majority. */
interface Proposed { volume: VolumeRecord, promises: MemberAnswer[], warning?: string }

/** What a change made here returns: the committed volume and what the members answered. */
export interface ChangeResult { volume: VolumeRecord, announce: AnnounceResult[], promises: MemberAnswer[], warning?: string }

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
  constructor (private readonly d: ReplicaSetDeps) {}

  private get selfId (): string { return this.d.libp2p.peerId.toString() }

  /** Creates or updates the volume on every member that can be reached now; the others learn it when next seen. */
  async announce (vol: VolumeRecord, alsoTell: string[] = []): Promise<AnnounceResult[]> {
    const { libp2p, peers } = this.d
    const results: AnnounceResult[] = []
    // Readers are told every change too (grants.ts): they learn the configuration from members.
    const targets = [...new Set([...vol.members, ...readersOf(vol), ...alsoTell])].filter(m => m !== this.selfId)
    await Promise.all(targets.map(async (member) => {
      if (!await peers.reach(member, async (via, ps) => await requestLocate(libp2p, peerIdFromString(via), ps, AbortSignal.timeout(5_000)))) {
        results.push({ peerId: member, status: 'pending' })
        return
      }
      try {
        const reply = await requestEnsureVolume(libp2p, peerIdFromString(member), descriptorOf(vol), AbortSignal.timeout(10_000))
        results.push({ peerId: member, status: reply.created ? 'created' : reply.volume === undefined ? 'pending' : 'exists' })
        if (reply.volume !== undefined) await this.d.adopt(reply.volume, member)
        if (vol.members.includes(member)) this.d.host.schedulePull(vol.name, member)
      } catch (err) {
        results.push({ peerId: member, status: 'refused', error: (err as Error).message })
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

  /** A new generation, membership unchanged (a member away past the grace period), through the same promises; never forced. */
  async newGeneration (volume: string, why: string): Promise<VolumeRecord> {
    const vol = await this.requireMember(volume)
    const { volume: updated } = await this.propose(vol, nextGeneration(vol), why)
    await this.announce(updated)
    return updated
  }

  /** Changes the write mode of a volume. */
  async setWriteMode (volume: string, writeMode: VolumeRecord['writeMode'], opts: ChangeOpts = {}): Promise<ChangeResult> {
    if (writeMode !== 'all' && writeMode !== 'active') throw new InvalidInputError(Codes.BAD_REQUEST, 'write mode must be all or active')
    const vol = await this.requireMember(volume)
    if (vol.writeMode === writeMode) return { volume: vol, announce: [], promises: [] }
    const made = await this.propose(vol, { ...nextGeneration(vol), writeMode }, `write mode ${writeMode}`, opts.force === true)
    const announce = await this.announce(made.volume)
    return { ...made, volume: await this.d.store.requireVolume(volume), announce }
  }

  /**
   * Changes the readers of a volume (grants.ts) as generation g+1, like the changes above:
   * `readers` gives the new list from the current configuration (undefined: nothing to do);
   * `probe` is asked first whether it takes the volume. Every reader, old and new, is told.
   */
  async reconfigure (volume: string, readers: (vol: VolumeRecord) => string[] | undefined, what: string, probe?: string, opts: ChangeOpts = {}): Promise<ChangeResult> {
    const vol = await this.requireMember(volume)
    const list = readers(vol)
    if (list === undefined) return { volume: vol, announce: [], promises: [] }
    const next = withReaders(nextGeneration(vol), list)
    if (probe !== undefined) await this.probeNewcomer(next, probe)
    const made = await this.propose(vol, next, what, opts.force === true)
    const announce = await this.announce(made.volume, [...readersOf(vol)])
    return { ...made, volume: await this.d.store.requireVolume(volume), announce }
  }

  /**
   * Removes `peer` from the replica set. The removed node is told (if reachable) and stops
   * serving the volume; it keeps its data, and if it is added again the rejoin rules decide
   * how it catches up.
   */
  async removeReplica (volume: string, peer: string, opts: ChangeOpts = {}): Promise<ChangeResult> {
    const vol = await this.requireMember(volume)
    if (!vol.members.includes(peer)) throw new NotFoundError(Codes.MEMBER_NOT_FOUND, `${peer} is not a member of '${volume}'`)
    if (vol.members.length === 1) throw new ConflictError(Codes.LAST_MEMBER, `${peer} is the only member of '${volume}': a volume needs at least one`)
    const made = await this.propose(vol, nextGeneration(vol, vol.members.filter(m => m !== peer)), `remove ${peer}`, opts.force === true)
    this.d.host.forgetRemote(volume, peer)
    const announce = await this.announce(made.volume, [peer])
    log('removed %s from %s: generation %d', peer, volume, made.volume.generation)
    return { ...made, volume: await this.d.store.requireVolume(volume), announce }
  }

  /**
   * The rule of the class comment: promises from a majority of the members of `vol`'s
   * configuration, then a compare-and-set commit of `next` here. Throws GENERATION_CONFLICT
   * (a member refused) or NO_QUORUM (too few promised, unless `force`), changing nothing.
   */
  private async propose (vol: VolumeRecord, next: VolumeRecord, what: string, force = false): Promise<Proposed> {
    const { libp2p, peers, promises, store } = this.d
    const desc = descriptorOf(next)
    const genId = genIdOf(next)
    const answers: MemberAnswer[] = []
    const release = (): void => {
      for (const a of answers) {
        if (a.answer !== 'promised') continue
        if (a.peerId === this.selfId) void promises.release(vol.name, genId).catch(() => {})
        else void requestPrepareGeneration(libp2p, peerIdFromString(a.peerId), desc, true, AbortSignal.timeout(5_000)).catch(() => {})
      }
    }
    const fail = (err: ReplicantError, why: string): never => {
      release()
      this.d.report?.(`volume ${vol.name}: change (${what}) not made: ${why}`)
      log.error('volume %s: change (%s) not made: %s', vol.name, what, why)
      this.d.decisions.change(vol.name, this.selfId, 'refused', `${what}: ${why}`)
      throw err
    }
    let firstPromise: number | undefined
    for (const m of [...vol.members].sort()) {
      try {
        if (m === this.selfId) {
          await promises.take(await store.requireVolume(vol.name), next.generation, genId, this.selfId)
        } else {
          if (!await peers.reach(m, async (via, ps) => await requestLocate(libp2p, peerIdFromString(via), ps, AbortSignal.timeout(5_000)))) {
            answers.push({ peerId: m, answer: 'unreachable', error: 'not reachable now' })
            continue
          }
          await requestPrepareGeneration(libp2p, peerIdFromString(m), desc, false, AbortSignal.timeout(10_000))
        }
        firstPromise ??= Date.now()
        answers.push({ peerId: m, answer: 'promised', ...(m === this.selfId ? { self: true as const } : {}) })
      } catch (err) {
        if (m !== this.selfId && !(isReplicantError(err) && REFUSALS.has(err.code))) {
          answers.push({ peerId: m, answer: 'unreachable', error: (err as Error).message })
          continue
        }
        answers.push({ peerId: m, answer: 'refused', error: (err as Error).message, ...(m === this.selfId ? { self: true as const } : {}) })
        const why = `${m === this.selfId ? 'this node' : m} refused generation ${next.generation}: ${(err as Error).message}`
        fail(new ConflictError(Codes.GENERATION_CONFLICT, `change of '${vol.name}' (${what}) not made: ${why}; nothing changed, retry`, { volume: vol.name, refusedBy: m, answers }), why)
      }
    }
    const quorum = hasQuorum(answers, vol.members.length)
    if (!quorum && !force) {
      fail(new NoQuorumError(vol.name, what, next.generation, vol.members.length, answers, this.selfId), `no majority of the ${vol.members.length} members: ${describeAnswers(answers, this.selfId)}`)
    }
    // The first promise taken expires first: commit only well within its life.
    if (firstPromise !== undefined && Date.now() - firstPromise > promises.lifeMs - promiseMarginMs(promises.lifeMs)) {
      fail(new ConflictError(Codes.GENERATION_CONFLICT, `change of '${vol.name}' (${what}) not made: the promises took too long to gather and may have expired; nothing changed, retry`, { volume: vol.name }), 'promises took too long')
    }
    const warning = quorum ? undefined : `forced without a majority of the ${vol.members.length} members (${describeAnswers(answers, this.selfId)}): a member that could not be reached may make another change of generation ${next.generation}; the two are then refused with GENERATION_CONFLICT when they meet`
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
      release()
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
}
