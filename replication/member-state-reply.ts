import type { MemberState } from '../protocols/control-protocol.js'
import { genIdOf } from '../core/records.js'
import type { Store } from '../store/store.js'
import { authorizeMember } from './member-authorizer.js'
import type { MembershipHost } from './membership-host.js'
import type { MemberStates } from './member-state.js'

export interface MemberStateDeps { store: Store, selfId: string, host: Pick<MembershipHost, 'progressOf'>, states: Pick<MemberStates, 'reported'> }

/**
 * This node's state of a volume, for one of its members (or readers): generation, history, log head and
 * floor, the addresses of the other members (peer exchange), copy progress and, if asked, size.
 */
export async function memberStateReply (d: MemberStateDeps, peer: string, volume: string, volumeId: string, withSize: boolean): Promise<MemberState> {
  const vol = await authorizeMember(d.store, volume, volumeId, peer, true)
  const addrs: Record<string, string[]> = {}
  for (const m of vol.members) {
    if (m === d.selfId || m === peer) continue
    const rec = await d.store.getPeer(m)
    if (rec !== undefined && rec.addrs.length > 0) addrs[m] = rec.addrs
  }
  const progress = d.host.progressOf(vol.name)
  return {
    volume: vol.name, volumeId: vol.id, seq: vol.seq, generation: vol.generation, members: vol.members,
    state: d.states.reported(vol), addrs,
    genId: genIdOf(vol), history: vol.history ?? [], logFloor: vol.logFloor ?? 0,
    ...(withSize ? { size: await d.store.volumeSize(vol.name) } : {}),
    ...(vol.state === 'copy' && progress !== undefined ? { progress: { filesTotal: progress.filesTotal, filesDone: progress.filesDone, bytesTotal: progress.bytesTotal, bytesDone: progress.bytesDone } } : {})
  }
}
