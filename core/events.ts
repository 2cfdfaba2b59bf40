/**
 * The node's event stream (`GET /v1/events`): state changes, progress, new conflicts, peers
 * connecting and leaving, changes committed, the phases and progress of moves run here. A bounded ring of recent events (so a client
 * that reconnects with Last-Event-ID misses nothing recent) and synchronous subscribers.
 */
export type NodeEventKind = 'hello' | 'state' | 'progress' | 'conflict' | 'peer' | 'change' | 'move'

export interface NodeEvent {
  /** Increasing from 1 in this process (SSE `id`). */
  id: number
  kind: NodeEventKind
  /** Milliseconds since the epoch. */
  at: number
  data: Record<string, unknown>
}

export type EventListener = (e: NodeEvent) => void

/** Events kept for replay and for the status page's first paint. */
export const RECENT_EVENTS = 256
/** Subscribers at once (each is an open HTTP response); more are refused by the route. */
export const MAX_SUBSCRIBERS = 64

export class NodeEvents {
  private next = 1
  private readonly ring: NodeEvent[] = []
  private readonly listeners = new Set<EventListener>()

  emit (kind: NodeEventKind, data: Record<string, unknown>): NodeEvent {
    const e: NodeEvent = { id: this.next++, kind, at: Date.now(), data }
    this.ring.push(e)
    if (this.ring.length > RECENT_EVENTS) this.ring.shift()
    // A subscriber that throws loses only its own delivery.
    for (const l of this.listeners) try { l(e) } catch { /* the route drops a broken client itself */ }
    return e
  }

  /** Recent events after `id` (all kept ones without it), oldest first. */
  since (id?: number): NodeEvent[] {
    return id === undefined ? [...this.ring] : this.ring.filter(e => e.id > id)
  }

  /** Returns the unsubscribe; undefined when MAX_SUBSCRIBERS are listening already. */
  subscribe (l: EventListener): (() => void) | undefined {
    if (this.listeners.size >= MAX_SUBSCRIBERS) return undefined
    this.listeners.add(l)
    return () => { this.listeners.delete(l) }
  }

  get subscribers (): number { return this.listeners.size }
}
