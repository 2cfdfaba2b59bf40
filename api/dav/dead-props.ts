/**
 * Dead properties (PROPPATCH of names the server does not define: Windows' Win32 times,
 * Finder's, litmus's), kept in memory by the node that took them, moved and copied with their
 * resource, dropped with it. Not part of the file record and not replicated: a client that
 * reads them from another member, or after a restart, sees none. Bounded: MAX_RESOURCES
 * resources (the least recently used is forgotten first), MAX_BYTES_PER_RESOURCE each.
 */
import { ReplicantError, Codes } from '../../core/errors.js'
import { within } from './locks.js'

export const MAX_RESOURCES = 10_000
export const MAX_BYTES_PER_RESOURCE = 64 * 1024

export interface DeadProp { ns: string, local: string, /** The whole property element as XML. */ xml: string }

const key = (volume: string, path: string): string => `${volume}\x00${path}`
const propKey = (ns: string, local: string): string => `${ns}\n${local}`

export class DeadProps {
  private readonly byResource = new Map<string, Map<string, DeadProp>>()

  get size (): number { return this.byResource.size }

  list (volume: string, path: string): DeadProp[] {
    return [...(this.byResource.get(key(volume, path))?.values() ?? [])]
  }

  get (volume: string, path: string, ns: string, local: string): DeadProp | undefined {
    return this.byResource.get(key(volume, path))?.get(propKey(ns, local))
  }

  /** Applies sets and removes at once, or none of them (PROPPATCH is atomic). */
  apply (volume: string, path: string, changes: Array<{ remove: boolean, prop: DeadProp }>): void {
    const k = key(volume, path)
    const next = new Map(this.byResource.get(k) ?? [])
    for (const c of changes) {
      if (c.remove) next.delete(propKey(c.prop.ns, c.prop.local))
      else next.set(propKey(c.prop.ns, c.prop.local), c.prop)
    }
    let bytes = 0
    for (const p of next.values()) bytes += p.xml.length
    if (bytes > MAX_BYTES_PER_RESOURCE) throw new ReplicantError(Codes.BODY_TOO_LARGE, `dead properties of one resource are limited to ${MAX_BYTES_PER_RESOURCE} bytes`)
    this.byResource.delete(k)
    if (next.size === 0) return
    if (this.byResource.size >= MAX_RESOURCES) this.byResource.delete(this.byResource.keys().next().value!)
    this.byResource.set(k, next)
  }

  /** Copies (or moves) the properties of `from` and everything under it to `to`. */
  copyTree (volume: string, from: string, to: string, move: boolean): void {
    this.dropTree(volume, to)
    const prefix = key(volume, '')
    for (const [k, props] of [...this.byResource]) {
      if (!k.startsWith(prefix)) continue
      const path = k.slice(prefix.length)
      if (!within(path, from)) continue
      const dest = from === '/' ? to + path : to + path.slice(from.length)
      if (move) this.byResource.delete(k)
      this.byResource.set(key(volume, dest), new Map(props))
    }
  }

  dropTree (volume: string, path: string): void {
    const prefix = key(volume, '')
    for (const k of [...this.byResource.keys()]) if (k.startsWith(prefix) && within(k.slice(prefix.length), path)) this.byResource.delete(k)
  }
}
