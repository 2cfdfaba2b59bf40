import { NotMemberError, NotFoundError, ConflictError, Codes } from '../core/errors.js'
import type { Store } from '../store/store.js'
import type { VolumeRecord } from '../core/records.js'

/**
 * A volume's index and chunks are served only to its members, and only for the volume with
 * the id the peer names: a peer with another volume of the same name gets nothing.
 */
export async function authorize (store: Store, volume: unknown, volumeId: unknown, remotePeer: string): Promise<VolumeRecord> {
  if (typeof volume !== 'string') throw new NotFoundError(Codes.VOLUME_NOT_FOUND, 'request names no volume')
  const vol = await store.getVolume(volume)
  if (vol === undefined) throw new NotFoundError(Codes.VOLUME_NOT_FOUND, `no volume named '${volume}' on this node`)
  if (!vol.members.includes(remotePeer)) throw new NotMemberError(`peer ${remotePeer} is not a member of volume '${volume}'`)
  if (volumeId !== vol.id) {
    throw new ConflictError(Codes.VOLUME_ID_MISMATCH, `volume '${volume}' here has id ${vol.id}, the peer named ${String(volumeId)}`)
  }
  return vol
}
