import { readersOf, type VolumeRecord } from '../core/records.js'

/** What this node learnt of one holder from its own requests (memory only, bounded by MAX_TRACKED). */
interface HolderStats { asked: number, got: number, bytes: number, inFlight: number, lastUsed: number }

/** How much of a holder's past hit rate each new answer keeps. */
const DECAY = 0.9
/** Holders remembered; the least recently used are forgotten first. */
const MAX_TRACKED = 1024

/**
 * Which holder a requester asks for chunks (issue 19): not always the first steady member,
 * which made one member serve every reader of a swarm. Candidates are the connected members
 * and, for a reader, the connected fellow readers (lazy replicas that hold what they read).
 * Each is drawn at random, weighted by how likely it is to hold what is asked (1 for a
 * steady member; otherwise its recent hit rate as seen here, starting at one in four) and away from
 * holders this node already keeps busy (want-lists in flight) and from the ones it has taken
 * most bytes from. A member keeps the old rule that steady members come first (spread among
 * them); the draw only orders the rest. A holder that lacks a chunk costs one round trip: the
 * fetcher asks the next one.
 */
export class HolderChoice {
  private readonly stats = new Map<string, HolderStats>()
  private totalBytes = 0

  constructor (private readonly random: () => number = Math.random) {}

  private of (peer: string): HolderStats {
    let s = this.stats.get(peer)
    if (s === undefined) {
      s = { asked: 0, got: 0, bytes: 0, inFlight: 0, lastUsed: 0 }
      this.stats.set(peer, s)
      if (this.stats.size > MAX_TRACKED) this.forgetOldest()
    }
    s.lastUsed = Date.now()
    return s
  }

  private forgetOldest (): void {
    let oldest: string | undefined
    let at = Infinity
    for (const [p, s] of this.stats) if (s.inFlight === 0 && s.lastUsed < at) { oldest = p; at = s.lastUsed }
    if (oldest !== undefined) this.stats.delete(oldest)
  }

  /** A want-list of `asked` hashes goes to `peer`. */
  begin (peer: string): void { this.of(peer).inFlight++ }

  /** Its answer: `got` of the `asked` hashes came, `bytes` in all. */
  end (peer: string, asked: number, got: number, bytes: number): void {
    const s = this.of(peer)
    s.inFlight = Math.max(0, s.inFlight - 1)
    // A window of about the last 1 / (1 - DECAY) answers: a reader that lacked chunks a while ago may hold them now.
    s.asked = s.asked * DECAY + asked
    s.got = s.got * DECAY + got
    s.bytes += bytes
    this.totalBytes += bytes
  }

  /** Bytes received here from each holder (status, tests). */
  receivedFrom (): Record<string, number> {
    return Object.fromEntries([...this.stats].filter(([, s]) => s.bytes > 0).map(([p, s]) => [p, s.bytes]))
  }

  weight (peer: string, complete: boolean): number {
    const s = this.stats.get(peer)
    // Not known to hold everything: its hit rate, from a prior of one in four (a miss costs a round trip).
    const hit = complete ? 1 : ((s?.got ?? 0) + 0.5) / ((s?.asked ?? 0) + 2)
    const busy = 1 + (s?.inFlight ?? 0)
    const n = Math.max(1, this.stats.size)
    // Taken more than an even share of what this node received: less likely to be asked again.
    const share = this.totalBytes > 0 ? (s?.bytes ?? 0) * n / this.totalBytes : 0
    return hit / (busy * busy * (1 + share))
  }

  /** `peers` in a weighted random order (drawn without replacement). */
  order (peers: Array<{ peer: string, complete: boolean }>): string[] {
    const left = peers.map(p => ({ peer: p.peer, w: Math.max(1e-6, this.weight(p.peer, p.complete)) }))
    const out: string[] = []
    while (left.length > 0) {
      const total = left.reduce((a, x) => a + x.w, 0)
      let r = this.random() * total
      let i = 0
      while (i < left.length - 1 && r >= left[i].w) { r -= left[i].w; i++ }
      out.push(left[i].peer)
      left.splice(i, 1)
    }
    return out
  }
}

export interface SourceView {
  selfId: string
  isConnected: (peer: string) => boolean
  /** The member's state as it last reported it (steady, copy, ...). */
  stateOf: (volume: string, member: string) => string | undefined
}

/**
 * The holders to ask for chunks of `vol`, in order: `first` (the peer a pull reads from), then
 * for a member the steady members and then the others, each group in `choice`'s order; for a
 * reader every connected member and fellow reader in one draw (readers fetch from each other).
 */
export function sourcesOf (vol: VolumeRecord, view: SourceView, choice: HolderChoice, first?: string): string[] {
  const self = view.selfId
  const members = vol.members.filter(m => m !== self && m !== first && view.isConnected(m))
  const steady = (m: string): boolean => view.stateOf(vol.name, m) === 'steady'
  let ordered: string[]
  if (vol.members.includes(self)) {
    ordered = [
      ...choice.order(members.filter(steady).map(peer => ({ peer, complete: true }))),
      ...choice.order(members.filter(m => !steady(m)).map(peer => ({ peer, complete: false })))
    ]
  } else {
    const readers = readersOf(vol).filter(r => r !== self && r !== first && view.isConnected(r))
    // A reader may not have heard a member's state: a member counts as holding everything unless it said otherwise.
    const whole = (m: string): boolean => { const st = view.stateOf(vol.name, m); return st === undefined || st === 'steady' }
    ordered = choice.order([...members.map(peer => ({ peer, complete: whole(peer) })), ...readers.map(peer => ({ peer, complete: false }))])
  }
  return first !== undefined && first !== self ? [first, ...ordered] : ordered
}
