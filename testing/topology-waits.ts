/**
 * Waiting on a topology: a bounded poll, and the two states tests wait for: every node lists
 * the same tree (convergence), and every member is connected, caught up and lacks nothing
 * (steady).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { Codes } from '../core/errors.js'
import { toKey } from '../core/version-vector.js'
import type { FileView } from '../replication/volume-service.js'
import type { ReplicantClient } from '../api/client.js'
import { TopologyError } from './topology-error.js'
import type { WaitOptions } from './topology-types.js'
import { logger } from '../core/log.js'

const log = logger('topology')

/** What the waits need of a node. */
export interface WaitedNode { readonly name: string, readonly running: boolean, readonly client: ReplicantClient }

/**
 * Calls `fn` every `intervalMs` until it returns a value (a throw counts as "not yet"); past
 * `timeoutMs` throws TIMEOUT with `describeLast()`, what the last try saw.
 */
export async function poll<V> (what: string, opts: WaitOptions, fn: () => Promise<V | undefined>, describeLast?: () => string): Promise<V> {
  const deadline = opts.timeoutMs !== undefined ? Date.now() + opts.timeoutMs : Infinity
  let lastErr: Error | undefined
  while (true) {
    // A throw is "not yet" (a node restarting refuses connections), but it is logged, and the
    // last one is told on timeout: a wait that can never succeed says why.
    const v = await fn().catch((err: Error) => { lastErr = err; log('%s: not yet: %s', what, err.message); return undefined })
    if (v !== undefined) return v
    if (Date.now() > deadline) {
      const last = lastErr !== undefined ? ` (last error: ${lastErr.message})` : ''
      throw new TopologyError(Codes.TIMEOUT, `timed out after ${opts.timeoutMs} ms waiting for ${what}${describeLast !== undefined ? `: ${describeLast()}` : ''}${last}`)
    }
    await sleep(opts.intervalMs ?? 100)
  }
}

const treeKey = (files: FileView[]): string => files.map(f => `${f.path} ${f.size} {${toKey(f.version)}}`).join('\n')

/** Waits until `nodes` list the same tree of `volume` (paths, sizes, versions); returns it. */
export async function waitForConvergence (volume: string, nodes: WaitedNode[], opts: WaitOptions): Promise<FileView[]> {
  let last = ''
  return await poll(`convergence of ${volume} on ${nodes.map(n => n.name).join(', ')}`, opts, async () => {
    const lists = await Promise.all(nodes.map(async n => (await n.client.list(volume)).files))
    const keys = lists.map(treeKey)
    last = nodes.map((n, i) => `${n.name}: ${lists[i].length} files`).join(', ')
    return keys.every(k => k === keys[0]) ? lists[0] : undefined
  }, () => last)
}

/**
 * Waits until every node (all must be running) holds `volume` in state `steady`, lacks
 * nothing, is connected to every other member and has applied each one's change log up to
 * the head it last heard, and all list the same tree; twice in a row. Returns the listing.
 * `nameOf` turns peer ids into node names for the report of what is still missing.
 */
export async function waitForSteady (volume: string, nodes: WaitedNode[], opts: WaitOptions, nameOf: (peerId: string) => string | undefined): Promise<FileView[]> {
  const down = nodes.filter(n => !n.running).map(n => n.name)
  if (down.length > 0) throw new TopologyError(Codes.NODE_DOWN, `waitForSteady(${volume}) needs every member running; down: ${down.join(', ')}`)
  let last = ''
  let streak = 0
  return await poll(`steady state of ${volume} on ${nodes.map(n => n.name).join(', ')}`, opts, async () => {
    const notes: string[] = []
    for (const n of nodes) {
      const info = await n.client.volumeInfo(volume).catch((err: Error) => { notes.push(`${n.name}: ${err.message}`); return undefined })
      if (info === undefined) continue
      if (info.state !== 'steady') notes.push(`${n.name}: state ${String(info.state)}`)
      if ((info.lacking?.files ?? 0) > 0 || (info.lacking?.bytes ?? 0) > 0) notes.push(`${n.name}: lacking ${String(info.lacking?.files)} files`)
      for (const m of info.memberStates) {
        if (m.self) continue
        const who = nameOf(m.peerId) ?? m.peerId
        if (!m.connected) notes.push(`${n.name}: not connected to ${who}`)
        else if (m.seq === null || m.watermark === null || m.watermark < m.seq) notes.push(`${n.name}: applied ${who} to ${String(m.watermark)} of ${String(m.seq)}`)
      }
    }
    let listing: FileView[] | undefined
    if (notes.length === 0) {
      const lists = await Promise.all(nodes.map(async n => (await n.client.list(volume)).files))
      const keys = lists.map(treeKey)
      if (keys.every(k => k === keys[0])) listing = lists[0]
      else notes.push(`trees differ (${nodes.map((n, i) => `${n.name}: ${lists[i].length} files`).join(', ')})`)
    }
    last = notes.slice(0, 8).join('; ')
    streak = listing !== undefined ? streak + 1 : 0
    return streak >= 2 ? listing : undefined
  }, () => last)
}
