import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { requestEnsureVolume, descriptorOf } from '../protocols/control-protocol.js'
import { ConflictError, InvalidInputError, NotFoundError, Codes } from '../core/errors.js'
import { MAX_READERS, holds, readersOf, type VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { AnnounceResult, MembershipHost } from './membership-host.js'
import type { ReplicaSetChanges } from './replica-set.js'

const log = logger('members')

/** The access levels a grant may give; `read` is the only one (and the default). */
export const ACCESS_LEVELS = ['read'] as const
export type Access = typeof ACCESS_LEVELS[number]

export interface GrantDeps {
  libp2p: Libp2p
  store: Pick<Store, 'listVolumes' | 'listApplied'>
  changes: Pick<ReplicaSetChanges, 'reconfigure'>
  host: Pick<MembershipHost, 'schedulePull' | 'signal'>
}

/**
 * Granted readers (docs/CONSISTENCY.md, "Readers"). A reader is listed in the configuration
 * (`readers`), not in `members`: it may fetch the index, chunks and member state of the
 * volume (member-authorizer.ts), so it serves reads as a lazy replica, but it is no
 * participant of all-mode writes, votes for no generation, is no source of any member's pulls
 * and every write it sends is refused. A grant or revocation is a new generation proposed
 * like any other change (replica-set.ts `reconfigure`), so it replicates with membership; the
 * reader learns it from the member that made it (or, if away, from the next member it meets).
 */
export class Grants {
  constructor (private readonly d: GrantDeps) {}

  private get selfId (): string { return this.d.libp2p.peerId.toString() }

  /**
   * Lets `peer` read `volume`; `peer` may be a list (`{"peers": [...]}`): all of them in one
   * generation, so a swarm of readers joins in one change instead of one each. Granting a
   * reader again changes nothing; a member cannot be made a reader.
   */
  async grant (volume: string, peer: unknown, access: unknown = 'read'): Promise<{ volume: VolumeRecord, announce: AnnounceResult[] }> {
    if (!ACCESS_LEVELS.includes(access as Access)) throw new InvalidInputError(Codes.BAD_REQUEST, `access must be one of ${ACCESS_LEVELS.join(', ')}`, { access })
    if (Array.isArray(peer)) return await this.grantMany(volume, peer)
    const id = peerIdOf(peer)
    return await this.d.changes.reconfigure(volume, vol => {
      if (vol.members.includes(id)) throw new ConflictError(Codes.ALREADY_MEMBER, `${id} is a member of '${volume}': it reads (and writes) already`)
      const readers = readersOf(vol)
      if (readers.includes(id)) return undefined
      if (readers.length >= MAX_READERS) throw new InvalidInputError(Codes.BAD_REQUEST, `volume '${volume}' has ${readers.length} readers already (at most ${MAX_READERS})`)
      return [...readers, id]
    }, `grant read to ${id}`, id)
  }

  private async grantMany (volume: string, peers: unknown[]): Promise<{ volume: VolumeRecord, announce: AnnounceResult[] }> {
    if (peers.length === 0 || peers.length > MAX_READERS) throw new InvalidInputError(Codes.BAD_REQUEST, `peers must list 1 to ${MAX_READERS} peer ids`)
    const ids = [...new Set(peers.map(peerIdOf))]
    return await this.d.changes.reconfigure(volume, vol => {
      const member = ids.find(id => vol.members.includes(id))
      if (member !== undefined) throw new ConflictError(Codes.ALREADY_MEMBER, `${member} is a member of '${volume}': it reads (and writes) already`)
      const readers = readersOf(vol)
      const added = ids.filter(id => !readers.includes(id))
      if (added.length === 0) return undefined
      if (readers.length + added.length > MAX_READERS) throw new InvalidInputError(Codes.BAD_REQUEST, `volume '${volume}' has ${readers.length} readers; ${added.length} more is past ${MAX_READERS}`)
      return [...readers, ...added]
    }, `grant read to ${ids.length} peers`)
  }

  /** Takes `peer`'s read access away; its open streams on every member that learns it are closed (reader-streams.ts). */
  async revoke (volume: string, peer: unknown): Promise<{ volume: VolumeRecord, announce: AnnounceResult[] }> {
    const id = peerIdOf(peer)
    return await this.d.changes.reconfigure(volume, vol => {
      const readers = readersOf(vol)
      if (!readers.includes(id)) throw new NotFoundError(Codes.NOT_A_READER, `${id} is not a reader of '${volume}'`, { volume, peerId: id })
      return readers.filter(r => r !== id)
    }, `revoke read of ${id}`)
  }

  /**
   * On every connection, for the volumes shared with `peer` as reader: a member tells a
   * reader its configuration (the reader creates, adopts or, revoked, stops serving the
   * volume by the rules of Membership.ensureVolume); a reader pulls the member's changes.
   * A peer that once read the volume here (it has an applied mark) and may no longer is told
   * too: a reader revoked while away learns it so (and so does a member removed while away).
   */
  async greet (peer: string): Promise<void> {
    const self = this.selfId
    for (const vol of await this.d.store.listVolumes().catch(() => [])) {
      if (vol.state === 'removed') continue
      if (vol.members.includes(self) && (readersOf(vol).includes(peer) || await this.formerReader(vol, peer))) {
        const signal = AbortSignal.any([this.d.host.signal, AbortSignal.timeout(10_000)])
        await requestEnsureVolume(this.d.libp2p, peerIdFromString(peer), descriptorOf(vol), signal)
          .catch((err: Error) => { log('telling reader %s about %s failed: %s', peer, vol.name, err.message) })
      } else if (readersOf(vol).includes(self) && vol.members.includes(peer)) {
        this.d.host.schedulePull(vol.name, peer)
      }
    }
  }

  private async formerReader (vol: VolumeRecord, peer: string): Promise<boolean> {
    if (holds(vol, peer)) return false
    const applied = await this.d.store.listApplied(vol.name).catch(() => undefined)
    return applied?.[peer] !== undefined
  }
}

function peerIdOf (peer: unknown): string {
  if (typeof peer !== 'string') throw new InvalidInputError(Codes.BAD_REQUEST, 'peer must be a peer id')
  try { peerIdFromString(peer) } catch { throw new InvalidInputError(Codes.BAD_REQUEST, `not a peer id: ${peer}`) }
  return peer
}
