import type { Libp2p } from '@libp2p/interface'
import type { VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import { Codes, isReplicantError } from '../core/errors.js'
import type { Store } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'

const log = logger('members')

const GRACE_CHECK_MS = 2_000

export interface GraceDeps {
  libp2p: Libp2p
  store: Store
  peers: PeerManager
  graceMs: number
  /** Commits and announces a new generation (ReplicaSetChanges.newGeneration: promises first). */
  bump: (volume: string, why: string) => Promise<VolumeRecord>
  record: (volume: string, peer: string, decision: string, why: string) => void
  /** Default-level output (a bump that could not gather a majority says so here). */
  report?: (line: string) => void
}

/**
 * Members that stay away: one unreachable for longer than the grace period starts a new
 * generation on the members that remain (membership unchanged), so its return is judged
 * against the history. One member acts: the one with the smallest peer id among those
 * connected, itself included. Each absence is counted once, until the member is seen again.
 * The bump takes promises from a majority like any change: a node on the minority side of a
 * partition cannot get one and does not bump (it says so once per absence).
 */
export class GraceWatch {
  private readonly lastSeen = new Map<string, number>()
  private readonly absentCounted = new Map<string, Set<string>>()
  private readonly startedAt = Date.now()
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly d: GraceDeps) {}

  private get selfId (): string { return this.d.libp2p.peerId.toString() }

  start (): void {
    this.d.libp2p.addEventListener('peer:connect', (evt) => { this.lastSeen.set(evt.detail.toString(), Date.now()) })
    this.d.libp2p.addEventListener('peer:disconnect', (evt) => { this.lastSeen.set(evt.detail.toString(), Date.now()) })
    this.timer = setInterval(() => { void this.check().catch((err: Error) => log('grace check failed: %s', err.message)) }, Math.min(GRACE_CHECK_MS, this.d.graceMs))
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
  }

  /** A member greeted us: its absence, if one was counted, is over. */
  seen (peer: string): void {
    this.lastSeen.set(peer, Date.now())
    this.absentCounted.forEach(set => set.delete(peer))
  }

  async check (): Promise<void> {
    const { store, peers, graceMs } = this.d
    if (!store.isOpen) return
    const now = Date.now()
    for (const vol of await store.listVolumes()) {
      if (!vol.members.includes(this.selfId) || vol.state === 'removed') continue
      const counted = this.absentCounted.get(vol.name) ?? new Set<string>()
      this.absentCounted.set(vol.name, counted)
      const away = vol.members.filter(m => m !== this.selfId && !peers.isConnected(m) && !counted.has(m) &&
        now - (this.lastSeen.get(m) ?? this.startedAt) > graceMs)
      if (away.length === 0) continue
      const present = [this.selfId, ...vol.members.filter(m => m !== this.selfId && peers.isConnected(m))].sort()
      for (const m of away) counted.add(m)
      if (present[0] !== this.selfId) continue
      // A concurrent change (or another member's bump) refuses this one: that generation serves as well.
      const updated = await this.d.bump(vol.name, `members ${away.join(', ')} unreachable past the grace period`).catch((err: Error) => {
        // The refusal itself is already reported (replica-set.ts); this says what it means here.
        if (isReplicantError(err) && err.code === Codes.NO_QUORUM) this.d.report?.(`volume ${vol.name}: ${away.join(', ')} unreachable past the grace period, but no new generation: too few members reachable for a majority`)
        log('volume %s: %s', vol.name, err.message)
      })
      if (updated === undefined) continue
      log('volume %s: %o unreachable past %d ms: generation %d', vol.name, away, graceMs, updated.generation)
      for (const m of away) this.d.record(vol.name, m, 'generation', `unreachable for more than ${Math.round(graceMs / 1000)} s: new generation ${updated.generation}`)
    }
  }
}
