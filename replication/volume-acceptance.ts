import { ReplicantError, Codes } from '../core/errors.js'
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
/** Refusals kept for status. */
export const MAX_VOLUME_REFUSALS = 32

interface Approval { volume: string, from: string, at: number }

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
 * --accept-volumes-from list, and one-time approvals; `none` only approvals. The answer to a
 * refused proposer says what to run on this node; refusals are logged and kept for status.
 */
export class VolumeAcceptance {
  readonly refused: VolumeRefusal[] = []
  readonly mode: AcceptVolumes

  constructor (
    private readonly selfId: string,
    private readonly store: Store,
    private readonly peers: Pick<PeerManager, 'isJoined'>,
    private readonly opts: AcceptanceOptions = {}
  ) {
    this.mode = opts.acceptVolumes ?? 'known'
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
  async refusal (volume: string, peer: string): Promise<{ why: string, error: ReplicantError } | undefined> {
    if (this.mode === 'all') return undefined
    if ((await this.approvals()).some(a => a.volume === volume && a.from === peer)) return undefined
    if (this.mode === 'known' && await this.known(peer)) return undefined
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
