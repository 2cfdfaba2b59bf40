/**
 * What feeds the node's event stream (core/events.ts, `GET /v1/events`):
 * - `peer`: libp2p's peer:connect / peer:disconnect, at once;
 * - `change`: every commit of the store (local writes and applied updates), with the seq;
 * - `conflict`: a commit that wrote a live conflict copy (`name.conflict-XXXXXXXX.ext`);
 * - `state` and `progress`: polled once a second from the engine (member states as this node
 *   knows them, copy/merge/repair progress), sent when they changed. Polling keeps the state
 *   machines free of listeners; a second is the page's budget (it must update within 2 s).
 */
import type { Libp2p } from '@libp2p/interface'
import type { NodeEvents } from '../core/events.js'
import type { Store } from '../store/store.js'
import type { SyncEngine } from '../replication/sync-engine.js'
import type { FileRecord } from '../core/records.js'
import { conflictOriginal } from '../replication/conflicts.js'

export const EVENT_POLL_MS = 1_000

export class NodeEventSources {
  private timer: NodeJS.Timeout | undefined
  /** `volume \0 member` -> last state sent; `volume` -> last progress sent (bounded by what is held). */
  private readonly states = new Map<string, string>()
  private readonly progress = new Map<string, string>()
  private polling = false

  constructor (private readonly events: NodeEvents, private readonly libp2p: Libp2p, private readonly store: Store, private readonly sync: SyncEngine) {}

  start (): void {
    this.libp2p.addEventListener('peer:connect', this.onConnect)
    this.libp2p.addEventListener('peer:disconnect', this.onDisconnect)
    this.store.commitListeners.add(this.onCommit)
    this.timer = setInterval(() => { void this.poll() }, EVENT_POLL_MS)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.libp2p.removeEventListener('peer:connect', this.onConnect)
    this.libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
    this.store.commitListeners.delete(this.onCommit)
  }

  private readonly onConnect = (evt: CustomEvent<{ toString: () => string }>): void => {
    this.events.emit('peer', { peer: evt.detail.toString(), connected: true })
    void this.poll()
  }

  private readonly onDisconnect = (evt: CustomEvent<{ toString: () => string }>): void => {
    this.events.emit('peer', { peer: evt.detail.toString(), connected: false })
    void this.poll()
  }

  private readonly onCommit = (vol: { name: string, seq: number }, records: FileRecord[]): void => {
    this.events.emit('change', { volume: vol.name, seq: vol.seq, files: records.length, paths: records.slice(0, 8).map(r => r.path) })
    for (const r of records) {
      const original = r.deleted ? undefined : conflictOriginal(r.path)
      if (original !== undefined) this.events.emit('conflict', { volume: vol.name, path: original, copy: r.path, size: r.size, mtime: r.mtime })
    }
  }

  /** Sends what changed since the last poll; one poll at a time. */
  async poll (): Promise<void> {
    if (this.polling) return
    this.polling = true
    try {
      const seen = new Set<string>()
      for (const vol of await this.store.listVolumes()) {
        for (const m of vol.members) {
          const key = `${vol.name}\x00${m}`
          seen.add(key)
          const { state, connected } = this.sync.memberStateOf(vol, m)
          const now = `${state ?? 'unknown'}`
          const before = this.states.get(key)
          if (before === now) continue
          this.states.set(key, now)
          this.events.emit('state', { volume: vol.name, member: m, self: m === this.libp2p.peerId.toString(), state: now, previous: before ?? null, connected, generation: vol.generation })
        }
        seen.add(vol.name)
        const p = this.sync.progress(vol.name)
        const running = p !== undefined && (vol.state === 'copy' || vol.state === 'merge' || this.sync.needsRepair.has(vol.name))
        const text = running ? JSON.stringify(p) : ''
        if (text === (this.progress.get(vol.name) ?? '')) continue
        this.progress.set(vol.name, text)
        this.events.emit('progress', running
          ? { volume: vol.name, running: true, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal, filesDone: p.filesDone, filesTotal: p.filesTotal, rate: p.rate, etaSeconds: p.etaSeconds }
          : { volume: vol.name, running: false })
      }
      for (const k of this.states.keys()) if (!seen.has(k)) this.states.delete(k)
      for (const k of this.progress.keys()) if (!seen.has(k)) this.progress.delete(k)
    } catch {
      // The store closing under a poll (stop): nothing to send.
    } finally {
      this.polling = false
    }
  }
}
