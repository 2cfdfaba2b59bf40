import { NotMemberError, NotFoundError, ConflictError, Codes, type ReplicantError } from '../core/errors.js'
import { holds, type VolumeRecord } from '../core/records.js'
import type { Store } from '../store/store.js'
import type { Authorizer } from '../protocols/sources.js'
import type { ReaderStreams } from './reader-streams.js'

/** The one read the policy makes. */
type Volumes = Pick<Store, 'getVolume'>

/**
 * What a peer learns that is not a member of a volume of that name here and does not name its
 * id: the same answer whether the volume exists or not (same code, same words, no id, no
 * generation), so a stranger cannot tell which names exist.
 */
export function noVolumeFor (volume: string, peer: string): ReplicantError {
  return new NotFoundError(Codes.VOLUME_NOT_FOUND, `no volume '${volume}' on this node lists ${peer} as a member`)
}

/**
 * A volume's index, chunks, writes and member state are served only to its members, and only
 * for the volume with the id the peer names: a peer with another volume of the same name gets
 * nothing. A non-member that names the right id (a former member: it knows the id) is told
 * NOT_A_MEMBER; any other non-member gets `noVolumeFor`, as if the name were not held here.
 * With `readers`, a peer granted read access (grants.ts) passes too: the index, chunks and
 * member state take that; writes and configuration changes never do.
 */
export async function authorizeMember (volumes: Volumes, volume: unknown, volumeId: unknown, remotePeer: string, readers = false): Promise<VolumeRecord> {
  if (typeof volume !== 'string') throw new NotFoundError(Codes.VOLUME_NOT_FOUND, 'request names no volume')
  const vol = await volumes.getVolume(volume)
  if (vol === undefined) throw noVolumeFor(volume, remotePeer)
  if (!(readers ? holds(vol, remotePeer) : vol.members.includes(remotePeer))) {
    if (volumeId === vol.id) throw new NotMemberError(`peer ${remotePeer} is not a member of volume '${volume}'`)
    throw noVolumeFor(volume, remotePeer)
  }
  if (volumeId !== vol.id) {
    // A member of the configuration held here, with another volume of that name: told so, without our id.
    throw new ConflictError(Codes.VOLUME_ID_MISMATCH, `volume '${volume}' here has another id than the one ${remotePeer} named (unrelated replicas)`)
  }
  return vol
}

/** Members only: the policy of the write handler (a reader's writes are refused). */
export function memberAuthorizer (volumes: Volumes): Authorizer {
  return { authorize: async (volume, volumeId, remotePeer) => await authorizeMember(volumes, volume, volumeId, remotePeer) }
}

/** Members and readers: the policy of the index and chunk handlers; `streams` closes readers' streams on revocation. */
export function readerAuthorizer (volumes: Volumes, streams: ReaderStreams): Authorizer {
  return {
    authorize: async (volume, volumeId, remotePeer) => await authorizeMember(volumes, volume, volumeId, remotePeer, true),
    watch: (vol, remotePeer, abort) => streams.watch(vol, remotePeer, abort)
  }
}
