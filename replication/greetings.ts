import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { requestEnsureVolume, requestMemberState, descriptorOf, type VolumeDescriptor } from '../protocols/control-protocol.js'
import { decideRejoin, type VolumeHistory } from './rejoin-rules.js'
import { Codes } from '../core/errors.js'
import type { VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import type { Store } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'
import type { MembershipHost } from './membership-host.js'
import type { MemberStates } from './member-state.js'
import { historyOf } from './generations.js'
import type { CopyOffer, MembershipOptions } from './membership-options.js'

const log = logger('members')

/** The first retry of a failed greeting comes this long after it; each next one twice as late, up to RETRY_MAX_MS. */
const RETRY_MIN_MS = 1_000
const RETRY_MAX_MS = 30_000
const RETRY_TICK_MS = 500
/** Pairs (volume, peer) waiting for a retry: past this, the one failed longest ago is given up (its peer's next connection greets it). */
const MAX_RETRIES = 4096
const GREETING_TIMEOUT_MS = 10_000

export interface GreetingDeps {
  libp2p: Libp2p
  store: Store
  peers: Pick<PeerManager, 'isConnected' | 'learn'>
  engine: MembershipHost
  states: MemberStates
  opts: Pick<MembershipOptions, 'approveCopy'>
  /** Why a volume is refused here, for status (Membership.refusals). */
  refusals: Map<string, string>
  adopt: (desc: VolumeDescriptor, from: string) => Promise<VolumeRecord | undefined>
  record: (volume: string, peer: string, decision: string, why: string) => void
  /** A member greeted us or we greeted it: its absence, if one was counted, is over (grace.ts). */
  seen: (peer: string) => void
}

interface Retry { volume: string, peer: string, next: number, backoff: number, running: boolean }

/**
 * The greeting between two members of a volume, when one connects to the other, when one is
 * added, or when an announce did not reach it: make sure the peer holds the volume, learn its
 * state, generation history and log, and decide how this node catches up from it
 * (rejoin-rules.ts).
 *
 * A greeting that fails (no answer in time on a loaded machine, a refusal the peer may lift)
 * is tried again while the peer stays connected, 1 s after, then twice as late each time up to
 * 30 s, until one succeeds. Without this, a member whose one greeting failed met the other
 * again only at the next connection, and a connection lasts as long as both run: a member
 * added then never received its volume. A refusal for good (another volume id) is not retried.
 */
export class Greetings {
  private readonly retries = new Map<string, Retry>()
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly d: GreetingDeps) {}

  private get selfId (): string { return this.d.libp2p.peerId.toString() }

  start (): void {
    this.timer = setInterval(() => { this.retryDue() }, RETRY_TICK_MS)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.retries.clear()
  }

  /** Greets `peer` about every volume both hold as members (only `only`, if given). */
  async greet (peer: string, only?: string): Promise<void> {
    const { store } = this.d
    if (!store.isOpen) return
    this.d.seen(peer)
    const volumes = (await store.listVolumes()).filter(v => only === undefined || v.name === only)
    // A retry for a volume no longer held here ends with it.
    if (only !== undefined && volumes.length === 0) this.retries.delete(keyOf(only, peer))
    for (const vol of volumes) {
      if (!vol.members.includes(peer) || !vol.members.includes(this.selfId) || vol.state === 'removed') { this.retries.delete(keyOf(vol.name, peer)); continue }
      try {
        await this.greetAbout(vol, peer)
        this.retries.delete(keyOf(vol.name, peer))
      } catch (err) {
        log('greeting %s about %s failed: %s', peer, vol.name, (err as Error).message)
        if ((err as { code?: string }).code === Codes.VOLUME_ID_MISMATCH) {
          const why = (err as Error).message
          this.d.refusals.set(vol.name, why)
          this.d.record(vol.name, peer, 'refused', why)
          this.retries.delete(keyOf(vol.name, peer))
        } else if (!this.d.engine.signal.aborted) {
          this.failed(vol.name, peer)
        }
      }
    }
  }

  /** Greets `peer` about `volume` again soon (an announce that did not reach it, a greeting that failed). */
  failed (volume: string, peer: string): void {
    if (peer === this.selfId || this.d.engine.signal.aborted) return
    const key = keyOf(volume, peer)
    // The same entry, so that a retry running now still clears its own `running` flag.
    const r = this.retries.get(key) ?? { volume, peer, next: 0, backoff: 0, running: false }
    r.backoff = r.backoff === 0 ? RETRY_MIN_MS : Math.min(r.backoff * 2, RETRY_MAX_MS)
    r.next = Date.now() + r.backoff
    this.retries.delete(key)
    this.retries.set(key, r)
    if (this.retries.size > MAX_RETRIES) this.retries.delete(this.retries.keys().next().value!)
  }

  private retryDue (): void {
    const now = Date.now()
    for (const r of this.retries.values()) {
      // A peer not connected now is greeted when it connects (sync-engine.ts): no dial from here.
      if (r.running || r.next > now || !this.d.peers.isConnected(r.peer)) continue
      r.running = true
      void this.greet(r.peer, r.volume)
        .catch((err: Error) => { log('retried greeting of %s about %s: %s', r.peer, r.volume, err.message) })
        .finally(() => { r.running = false })
    }
  }

  private async greetAbout (vol: VolumeRecord, peer: string): Promise<void> {
    const { libp2p, store, engine, peers } = this.d
    const signal = AbortSignal.any([engine.signal, AbortSignal.timeout(GREETING_TIMEOUT_MS)])
    const id = peerIdFromString(peer)
    const reply = await requestEnsureVolume(libp2p, id, descriptorOf(vol), signal)
    const local = (reply.volume !== undefined ? await this.d.adopt(reply.volume, peer) : undefined) ?? await store.requireVolume(vol.name)
    if (!local.members.includes(this.selfId) || local.state === 'removed') return
    this.d.refusals.delete(vol.name)
    const st = await requestMemberState(libp2p, id, vol.name, vol.id, signal)
    engine.setRemote(vol.name, peer, st.state, st.generation, st.seq)
    for (const [m, addrs] of Object.entries(st.addrs ?? {})) {
      if (local.members.includes(m) && Array.isArray(addrs)) await peers.learn(m, addrs.filter(a => typeof a === 'string'))
    }
    if (local.state === 'copy') {
      this.d.record(vol.name, peer, 'copy', 'new member (wannabe): full copy, index first')
      engine.schedulePull(vol.name, peer, 'copy')
      return
    }
    if (local.state === 'merge') {
      this.d.record(vol.name, peer, 'merge', 'not shut down cleanly: full index reconciliation and local verification')
      engine.schedulePull(vol.name, peer, 'merge')
      return
    }
    const watermark = await store.getWatermark(vol.name, peer)
    const remote: VolumeHistory = { volumeId: st.volumeId, generation: st.generation, genId: st.genId ?? `${st.volumeId.slice(0, 16)}-${st.generation}`, history: st.history ?? [] }
    const d = decideRejoin(historyOf(local), remote, watermark, { head: st.seq, floor: st.logFloor ?? 0 })
    if (d.decision === 'copy') {
      const size = await requestMemberState(libp2p, id, vol.name, vol.id, signal, true).then(s => s.size, () => undefined)
      const offer: CopyOffer = { volume: vol.name, volumeId: vol.id, peer, files: size?.files ?? null, bytes: size?.bytes ?? null, why: d.why }
      if (!await this.approve(offer, peer)) return
    }
    this.d.record(vol.name, peer, d.decision, d.why)
    if (d.decision === 'refused') { this.d.refusals.set(vol.name, d.why); return }
    if (d.decision === 'nothing') return
    engine.schedulePull(vol.name, peer, d.decision)
  }

  /** Asks the operator (MembershipOptions.approveCopy) before a full copy; a refusal holds the volume offline. */
  async approve (offer: CopyOffer, peer: string): Promise<boolean> {
    const { approveCopy } = this.d.opts
    if (approveCopy === undefined) return true
    const ok = await approveCopy(offer)
    if (!ok) {
      const why = `full copy from ${peer} refused by the operator (${offer.why})`
      this.d.states.holdOffline(offer.volume, why)
      this.d.record(offer.volume, peer, 'refused', why)
      log('%s: %s', offer.volume, why)
    } else {
      this.d.states.bringOnline(offer.volume)
    }
    return ok
  }
}

function keyOf (volume: string, peer: string): string { return `${volume}\x00${peer}` }
