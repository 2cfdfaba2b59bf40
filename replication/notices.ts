import type { Notice } from '../protocols/notify-protocol.js'
import { logger } from '../core/log.js'
import { readersOf } from '../core/records.js'
import type { Store } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'
import type { MemberStates } from './member-state.js'
import { storedState } from './member-state.js'
import type { RemoteViews } from './remote-views.js'

const log = logger('sync')

export interface NoticeDeps {
  store: Store
  peers: PeerManager
  states: MemberStates
  remotes: RemoteViews
  selfId: string
  stopped: () => boolean
  /** Sends one notice to a member (the engine adds the protocol and the time limit). */
  send: (peer: string, notice: Notice) => Promise<void>
  /** A member's log moved on: pull from it. */
  pull: (volume: string, peer: string) => void
}

/**
 * Change notices, both ways: a commit here tells every connected member our new head (in
 * rounds: idle -> running -> idle, with `again` set by a commit mid-round, so a burst of
 * writes sends few notices); a notice from a member records its head and state and pulls.
 */
export class Notices {
  private readonly rounds = new Map<string, { running: boolean, again: boolean }>()

  constructor (private readonly d: NoticeDeps) {}

  /**
   * Recorded only when `peer` is a member of a volume of that id held here: what any other peer
   * says (any name, any number of them) would otherwise stay in memory for the node's life.
   */
  received (peer: string, notice: Notice): void {
    void this.d.store.getVolume(notice.volume).then(vol => {
      if (vol?.id !== notice.volumeId || !vol.members.includes(peer)) {
        log('notice of %s from %s ignored: not a member of a volume of that id here', notice.volume, peer)
        return
      }
      this.d.remotes.setHead(notice.volume, peer, notice.seq)
      if (notice.state !== undefined) this.d.remotes.set(notice.volume, peer, notice.state, notice.generation ?? null)
      if (vol.state !== 'removed' && !this.d.states.offline.has(vol.name)) this.d.pull(vol.name, peer)
    }).catch((err: Error) => {
      // The store closing under a late notice is expected; anything else is worth a line.
      if (this.d.stopped()) log('notice of %s from %s dropped at stop: %s', notice.volume, peer, err.message)
      else log.error('notice of %s from %s not handled: %s', notice.volume, peer, err.message)
    })
  }

  /** Tells every connected member our new head of `volume`. */
  announceSeq (volume: string): void {
    if (this.d.stopped()) return
    const round = this.rounds.get(volume) ?? { running: false, again: false }
    this.rounds.set(volume, round)
    if (round.running) { round.again = true; return }
    round.running = true
    void (async () => {
      try {
        do {
          round.again = false
          const vol = await this.d.store.getVolume(volume)
          if (vol === undefined) return
          // A member tells its readers too (they pull from members); a reader's notice would be ignored.
          const readers = vol.members.includes(this.d.selfId) ? readersOf(vol) : []
          await Promise.allSettled([...vol.members, ...readers].filter(m => m !== this.d.selfId && this.d.peers.isConnected(m)).map(async m => {
            await this.d.send(m, { volume: vol.name, volumeId: vol.id, seq: vol.seq, state: storedState(vol), generation: vol.generation })
          }))
        } while (round.again && !this.d.stopped())
      } catch (err) {
        log('notice round for %s failed: %s', volume, (err as Error).message)
      } finally {
        round.running = false
      }
    })()
  }
}
