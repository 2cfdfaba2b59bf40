import { NotMemberError, NotFoundError, ConflictError, Codes } from '../core/errors.js'
import type { VolumeRecord } from '../core/records.js'
import type { Store } from '../store/store.js'
import type { Authorizer } from '../protocols/sources.js'

/** The one read the policy makes. */
type Volumes = Pick<Store, 'getVolume'>

/**
 * A volume's index, chunks, writes and member state are served only to its members, and only
 * for the volume with the id the peer names: a peer with another volume of the same name gets nothing.
 */
export async function authorizeMember (volumes: Volumes, volume: unknown, volumeId: unknown, remotePeer: string): Promise<VolumeRecord> {
  if (typeof volume !== 'string') throw new NotFoundError(Codes.VOLUME_NOT_FOUND, 'request names no volume')
  const vol = await volumes.getVolume(volume)
  if (vol === undefined) throw new NotFoundError(Codes.VOLUME_NOT_FOUND, `no volume named '${volume}' on this node`)
  if (!vol.members.includes(remotePeer)) throw new NotMemberError(`peer ${remotePeer} is not a member of volume '${volume}'`)
  if (volumeId !== vol.id) {
    throw new ConflictError(Codes.VOLUME_ID_MISMATCH, `volume '${volume}' here has id ${vol.id}, the peer named ${String(volumeId)}`)
  }
  return vol
}

/** The policy over one store, in the form the index and chunk handlers take it. */
export function memberAuthorizer (volumes: Volumes): Authorizer {
  return { authorize: async (volume, volumeId, remotePeer) => await authorizeMember(volumes, volume, volumeId, remotePeer) }
}
