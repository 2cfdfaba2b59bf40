import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { ReplicantError, Codes } from '../core/errors.js'
import { requestVouch } from '../protocols/control-protocol.js'
import { noVolumeFor } from './member-authorizer.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'

const log = logger('members')

/** `start --accept-volumes`: from whom this node takes a volume it does not hold yet. */
export type AcceptVolumes = 'all' | 'known' | 'none'
export const ACCEPT_VOLUMES_MODES: readonly AcceptVolumes[] = ['all', 'known', 'none']

/** A proposal of a new volume this node refused (status, newest last). */
export interface VolumeRefusal { volume: string, from: string, at: number, why: string }

/** Store meta key: one-time operator approvals (`volume accept VOL --from PEER`). */
const APPROVALS_KEY = 'volumeApprovals'
const MAX_APPROVALS = 64
const VOUCH_ATTEMPTS = 4
const VOUCH_RETRY_MS = 500
/** Refusals kept for status. */
export const MAX_VOLUME_REFUSALS = 32

interface Approval { volume: string, from: string, at: number }

/** What a proposal says of the volume. */
export interface Candidate { name: string, id: string, members: string[] }

export interface AcceptanceOptions {
  acceptVolumes?: AcceptVolumes
  /** `--accept-volumes-from`: peers whose new volumes are taken in `known` mode. */
  acceptVolumesFrom?: string[]
  report?: (line: string) => void
}

/**
 * Whether a peer may create a volume on this node (one it does not hold): unsolicited volumes
 * fill disks. `all` takes any; `known` (the default) takes them from peers the operator
 * introduced (--join, persisted), peers that are members of a volume held here, the
 * --accept-volumes-from list, proposers such a known peer vouches for (a member of that
 * volume there), and one-time approvals; `none` only approvals. The answer to a
 * refused proposer says what to run on this node; refusals are logged and kept for status.
 */
export class VolumeAcceptance {
  readonly refused: VolumeRefusal[] = []
  readonly mode: AcceptVolumes

  constructor (
    private readonly libp2p: Libp2p,
    private readonly store: Store,
    private readonly peers: Pick<PeerManager, 'isJoined' | 'isConnected'>,
    private readonly opts: AcceptanceOptions = {}
  ) {
    this.mode = opts.acceptVolumes ?? 'known'
  }

  private get selfId (): string { return this.libp2p.peerId.toString() }

  /**
   * Another node asks whether `member` is a member of our `volume` with id `volumeId`. Only
   * an asker that names the right id is answered (it was sent the id by a member); anyone
   * else gets the answer a name not held here gets.
   */
  async vouch (asker: string, volume: string, volumeId: string, member: string): Promise<boolean> {
    const vol = await this.store.getVolume(volume)
    if (vol === undefined || vol.id !== volumeId) throw noVolumeFor(volume, asker)
    return vol.state !== 'removed' && vol.members.includes(this.selfId) && vol.members.includes(member)
  }

  /**
   * In `known` mode a proposer not known here is still taken when a known peer that the
   * proposal lists, and that is connected, confirms the proposer is a member of that volume
   * (same id): a node joined to one member can be added by another.
   */
  private async vouched (candidate: Candidate, peer: string): Promise<boolean> {
    const vouchers: string[] = []
    for (const m of candidate.members) {
      if (m !== peer && m !== this.selfId && this.peers.isConnected(m) && await this.known(m)) vouchers.push(m)
    }
    // At creation the proposer tells every member at once: a voucher may not hold it yet.
    for (let attempt = 0; vouchers.length > 0 && attempt < VOUCH_ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise(resolve => setTimeout(resolve, VOUCH_RETRY_MS))
      for (const m of vouchers) {
        const yes = await requestVouch(this.libp2p, peerIdFromString(m), candidate.name, candidate.id, peer, AbortSignal.timeout(3_000)).catch(() => false)
        if (yes) return true
      }
    }
    return false
  }

  private async approvals (): Promise<Approval[]> {
    return await this.store.getMeta<Approval[]>(APPROVALS_KEY) ?? []
  }

  /** Lets `from` create `volume` here once (kept in level until used). */
  async approve (volume: string, from: string): Promise<void> {
    const kept = (await this.approvals()).filter(a => !(a.volume === volume && a.from === from))
    await this.store.putMeta(APPROVALS_KEY, [...kept, { volume, from, at: Date.now() }].slice(-MAX_APPROVALS))
    log('volume %s: the operator accepts it from %s (once)', volume, from)
  }

  /** Uses up the approval of `volume` from `from`, if any. */
  async consume (volume: string, from: string): Promise<void> {
    const all = await this.approvals()
    const kept = all.filter(a => !(a.volume === volume && a.from === from))
    if (kept.length !== all.length) await this.store.putMeta(APPROVALS_KEY, kept)
  }

  private async known (peer: string): Promise<boolean> {
    if (this.peers.isJoined(peer) || this.opts.acceptVolumesFrom?.includes(peer) === true) return true
    return (await this.store.listVolumes()).some(v => v.members.includes(peer))
  }

  /**
   * Undefined if `peer` may create `volume` here; otherwise the refusal (recorded, logged) with
   * the error for the proposer. It says nothing of whether a volume of that name is held here.
   */
  async refusal (candidate: Candidate, peer: string): Promise<{ why: string, error: ReplicantError } | undefined> {
    const volume = candidate.name
    if (this.mode === 'all') return undefined
    if ((await this.approvals()).some(a => a.volume === volume && a.from === peer)) return undefined
    if (this.mode === 'known' && (await this.known(peer) || await this.vouched(candidate, peer))) return undefined
    const why = this.mode === 'none'
      ? `new volume '${volume}' from ${peer} not accepted: this node takes new volumes only with an operator approval (--accept-volumes none)`
      : `new volume '${volume}' from ${peer} not accepted: not a peer this node knows (--accept-volumes known: joined peers, members of volumes held here, --accept-volumes-from)`
    const at = Date.now()
    const i = this.refused.findIndex(r => r.volume === volume && r.from === peer)
    if (i >= 0) this.refused.splice(i, 1)
    this.refused.push({ volume, from: peer, at, why })
    if (this.refused.length > MAX_VOLUME_REFUSALS) this.refused.splice(0, this.refused.length - MAX_VOLUME_REFUSALS)
    const error = new ReplicantError(Codes.VOLUME_REFUSED,
      `node ${this.selfId} does not accept new volumes from ${peer}: on that node run \`replicant volume accept ${volume} --from ${peer}\` (or start it with --accept-volumes-from ${peer}), then retry`)
    return { why, error }
  }
}
