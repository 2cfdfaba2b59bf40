import { readersOf, type VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'

const log = logger('peers')

/** Fellow readers a reader keeps a connection to (readers fetch from each other: a tree, not a star on the members). */
export const DEFAULT_FANOUT = 6
/** Connection attempts in flight at once (a node added to a big swarm does not dial everyone at once). */
const MAX_REACHING = 4
const BACKOFF_MIN_MS = 1_000
const BACKOFF_MAX_MS = 30_000

export interface VolumeLinkDeps {
  selfId: string
  listVolumes: () => Promise<VolumeRecord[]>
  isConnected: (peer: string) => boolean
  /** Connects to `peer`: dialled where its address is known, otherwise located through the connected peers first. */
  reach: (peer: string) => Promise<boolean>
  fanout?: number
  random?: () => number
}

/**
 * Keeps this node connected to the peers its volumes need (issue 19): every other member of
 * each volume held here, and for a reader up to `fanout` fellow readers. Peers it has no
 * address of are located through the peers it is connected to (a bootstrap peer, a member),
 * so a node that knows one peer finds the rest by itself, and a member that was not reachable
 * when it was first met is tried again, with backoff, instead of once. The redial loop of
 * peer-manager.ts only redials peers whose address is stored.
 */
export class VolumeLinks {
  private readonly backoff = new Map<string, { next: number, delay: number }>()
  private readonly reaching = new Set<string>()
  /** The fellow readers picked per volume: kept while they stay readers, so links do not churn. */
  private readonly picked = new Map<string, string[]>()

  constructor (private readonly d: VolumeLinkDeps) {}

  /** The peers `vol` needs this node connected to. */
  wantedFor (vol: VolumeRecord): string[] {
    const self = this.d.selfId
    const out = vol.members.filter(m => m !== self)
    const readers = readersOf(vol)
    if (!readers.includes(self)) return out
    const others = readers.filter(r => r !== self)
    const kept = (this.picked.get(vol.name) ?? []).filter(r => others.includes(r))
    const random = this.d.random ?? Math.random
    const rest = others.filter(r => !kept.includes(r)).sort(() => random() - 0.5)
    const picked = [...kept, ...rest].slice(0, this.d.fanout ?? DEFAULT_FANOUT)
    this.picked.set(vol.name, picked)
    return [...out, ...picked]
  }

  async tick (): Promise<void> {
    const now = Date.now()
    const wanted = new Set<string>()
    for (const vol of await this.d.listVolumes()) {
      if (vol.state === 'removed') continue
      for (const p of this.wantedFor(vol)) wanted.add(p)
    }
    for (const p of this.backoff.keys()) if (!wanted.has(p)) this.backoff.delete(p)
    for (const p of wanted) {
      if (this.reaching.size >= MAX_REACHING) break
      if (this.reaching.has(p) || this.d.isConnected(p)) { if (this.d.isConnected(p)) this.backoff.delete(p); continue }
      const b = this.backoff.get(p)
      if (b !== undefined && b.next > now) continue
      this.reaching.add(p)
      void this.d.reach(p).catch((err: Error) => { log('reaching %s: %s', p, err.message); return false }).then(ok => {
        this.reaching.delete(p)
        if (ok) { this.backoff.delete(p); return }
        const delay = Math.min((b?.delay ?? BACKOFF_MIN_MS / 2) * 2, BACKOFF_MAX_MS)
        this.backoff.set(p, { next: Date.now() + delay, delay })
      })
    }
  }
}
