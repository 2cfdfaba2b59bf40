import { ProtocolError, Codes } from '../core/errors.js'

/**
 * Two lanes for the chunk frames this node serves to one peer: readers (want-lists flagged
 * `p: 1`, a lazy read waiting on them) and bulk (everything else: background copy, pulls).
 * Bulk frames to a peer go one at a time, and none starts while a reader's want-list to that
 * peer is being served; readers never wait for the lanes. So a reader's frame waits behind at
 * most the one bulk frame already on its way, not behind every bulk stream's next frame.
 *
 * States per peer (an entry exists only while not idle):
 *
 * | state         | readers | bulk sending | a queued bulk frame starts when       |
 * |---------------|---------|--------------|---------------------------------------|
 * | idle          | 0       | no           | at once (-> bulk)                     |
 * | bulk          | 0       | yes          | the sending one ends (-> bulk / idle) |
 * | reading       | >= 1    | no           | the last reader ends (-> bulk / idle) |
 * | reading+bulk  | >= 1    | yes          | both of the above                     |
 *
 * A waiting bulk frame gives up after `waitMs` (its request fails as any slow one would), so a
 * stream of readers cannot hold a dead bulk stream's handler for ever.
 */
export class ServeLanes {
  private readonly peers = new Map<string, PeerLanes>()

  constructor (private readonly waitMs: number) {}

  /** Marks a reader want-list to `peer` as in service; call the result when it is done. */
  reader (peer: string): () => void {
    const lanes = this.lanesOf(peer)
    lanes.readers++
    let done = false
    return () => {
      if (done) return
      done = true
      lanes.readers--
      this.wake(peer, lanes)
    }
  }

  /** Waits for this peer's bulk turn; resolves to the function that ends it. */
  async bulk (peer: string): Promise<() => void> {
    const lanes = this.lanesOf(peer)
    if (lanes.readers === 0 && !lanes.sending && lanes.waiting.length === 0) {
      lanes.sending = true
      return this.ender(peer, lanes)
    }
    await new Promise<void>((resolve, reject) => {
      const waiter = { go: () => { clearTimeout(timer); resolve() } }
      const timer = setTimeout(() => {
        const i = lanes.waiting.indexOf(waiter)
        if (i >= 0) lanes.waiting.splice(i, 1)
        this.wake(peer, lanes)
        reject(new ProtocolError(Codes.TIMEOUT, `bulk frame to ${peer} waited ${this.waitMs} ms for readers`))
      }, this.waitMs)
      lanes.waiting.push(waiter)
    })
    return this.ender(peer, lanes)
  }

  /** Readers in service and bulk frames waiting, for `peer` (tests, status). */
  stateOf (peer: string): { readers: number, sending: boolean, waiting: number } {
    const l = this.peers.get(peer)
    return { readers: l?.readers ?? 0, sending: l?.sending ?? false, waiting: l?.waiting.length ?? 0 }
  }

  private ender (peer: string, lanes: PeerLanes): () => void {
    let done = false
    return () => {
      if (done) return
      done = true
      lanes.sending = false
      this.wake(peer, lanes)
    }
  }

  private lanesOf (peer: string): PeerLanes {
    let l = this.peers.get(peer)
    if (l === undefined) {
      l = { readers: 0, sending: false, waiting: [] }
      this.peers.set(peer, l)
    }
    return l
  }

  /** Starts the next bulk frame if the peer's lanes allow; forgets the peer once idle. */
  private wake (peer: string, lanes: PeerLanes): void {
    if (lanes.readers === 0 && !lanes.sending) {
      const next = lanes.waiting.shift()
      if (next !== undefined) {
        lanes.sending = true
        next.go()
        return
      }
      if (this.peers.get(peer) === lanes) this.peers.delete(peer)
    }
  }
}

interface PeerLanes {
  readers: number
  sending: boolean
  waiting: Array<{ go: () => void }>
}
