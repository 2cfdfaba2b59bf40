import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { requestEnsureVolume, requestLocate, descriptorOf, type VolumeDescriptor } from '../protocols/control-protocol.js'
import { ConflictError, InvalidInputError, NotFoundError, Codes } from '../core/errors.js'
import type { VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'
import type { AnnounceResult, MembershipHost } from './membership-host.js'
import { nextGeneration } from './generations.js'
import { moveTo } from './member-state.js'

const log = logger('members')

export interface ReplicaSetDeps {
  libp2p: Libp2p
  store: Store
  peers: PeerManager
  host: MembershipHost
  /** Takes a member's descriptor if it is of a later generation (Membership.adopt). */
  adopt: (desc: VolumeDescriptor) => Promise<VolumeRecord | undefined>
}

/**
 * Changes of a replica set made on this node, online: add and remove members, change the
 * write mode. Each is a new generation here, then announced to every member reachable now;
 * the others learn it when they next meet any member.
 */
export class ReplicaSetChanges {
  constructor (private readonly d: ReplicaSetDeps) {}

  private get selfId (): string { return this.d.libp2p.peerId.toString() }

  /** Creates or updates the volume on every member that can be reached now; the others learn it when next seen. */
  async announce (vol: VolumeRecord, alsoTell: string[] = []): Promise<AnnounceResult[]> {
    const { libp2p, peers } = this.d
    const results: AnnounceResult[] = []
    const targets = [...new Set([...vol.members, ...alsoTell])].filter(m => m !== this.selfId)
    await Promise.all(targets.map(async (member) => {
      if (!await peers.reach(member, async (via, ps) => await requestLocate(libp2p, peerIdFromString(via), ps, AbortSignal.timeout(5_000)))) {
        results.push({ peerId: member, status: 'pending' })
        return
      }
      try {
        const reply = await requestEnsureVolume(libp2p, peerIdFromString(member), descriptorOf(vol), AbortSignal.timeout(10_000))
        results.push({ peerId: member, status: reply.created ? 'created' : reply.volume === undefined ? 'pending' : 'exists' })
        if (reply.volume !== undefined) await this.d.adopt(reply.volume)
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

  /** Adds `peer` (which starts as a wannabe) to the replica set of `volume`. */
  async addReplica (volume: string, peer: string): Promise<{ volume: VolumeRecord, announce: AnnounceResult[] }> {
    try { peerIdFromString(peer) } catch { throw new InvalidInputError(Codes.BAD_REQUEST, `not a peer id: ${peer}`) }
    const vol = await this.requireMember(volume)
    if (vol.members.includes(peer)) throw new ConflictError(Codes.ALREADY_MEMBER, `${peer} is already a member of '${volume}'`)
    const updated = await this.d.store.updateVolume(volume, v => nextGeneration(v, [...v.members, peer]))
    this.d.host.setRemote(volume, peer, 'copy', updated.generation)
    const announce = await this.announce(updated)
    return { volume: await this.d.store.requireVolume(volume), announce }
  }

  /** Changes the write mode of a volume. */
  async setWriteMode (volume: string, writeMode: VolumeRecord['writeMode']): Promise<{ volume: VolumeRecord, announce: AnnounceResult[] }> {
    if (writeMode !== 'all' && writeMode !== 'active') throw new InvalidInputError(Codes.BAD_REQUEST, 'write mode must be all or active')
    const vol = await this.requireMember(volume)
    if (vol.writeMode === writeMode) return { volume: vol, announce: [] }
    const updated = await this.d.store.updateVolume(volume, v => ({ ...nextGeneration(v), writeMode }))
    const announce = await this.announce(updated)
    return { volume: await this.d.store.requireVolume(volume), announce }
  }

  /**
   * Removes `peer` from the replica set. The removed node is told (if reachable) and stops
   * serving the volume; it keeps its data, and if it is added again the rejoin rules decide
   * how it catches up.
   */
  async removeReplica (volume: string, peer: string): Promise<{ volume: VolumeRecord, announce: AnnounceResult[] }> {
    const vol = await this.requireMember(volume)
    if (!vol.members.includes(peer)) throw new NotFoundError(Codes.MEMBER_NOT_FOUND, `${peer} is not a member of '${volume}'`)
    if (vol.members.length === 1) throw new ConflictError(Codes.LAST_MEMBER, `${peer} is the only member of '${volume}': a volume needs at least one`)
    const updated = await this.d.store.updateVolume(volume, v => {
      const next = nextGeneration(v, v.members.filter(m => m !== peer))
      return peer === this.selfId ? moveTo(next, 'removed') : next
    })
    this.d.host.forgetRemote(volume, peer)
    const announce = await this.announce(updated, [peer])
    log('removed %s from %s: generation %d', peer, volume, updated.generation)
    return { volume: await this.d.store.requireVolume(volume), announce }
  }
}
