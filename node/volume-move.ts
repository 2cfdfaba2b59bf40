import type { MoveProgress, MoveResult } from '../api/types.js'
import type { AnnounceResult } from '../replication/sync-engine.js'
import type { SyncEngine } from '../replication/sync-engine.js'
import { notTakenEffect } from '../replication/sync-engine.js'
import type { VolumeService } from '../replication/volume-service.js'
import type { Store } from '../store/store.js'
import { InvalidInputError, NotFoundError, ReplicantError, Codes } from '../core/errors.js'
import { RateMeter } from '../core/rate.js'
import type { NodeEvents } from '../core/events.js'

export interface MoveOpts { abandon?: boolean, force?: boolean, signal?: AbortSignal, onProgress?: (p: MoveProgress) => void }

/**
 * Moves a volume's replica from one member to another, online: adds `to` (a wannabe that
 * serves at once; a never-seen `to` needs `force`, and so does each change without a majority
 * of the members), waits until it is steady, then removes
 * `from`. Reads and writes through the other members never stop. An interrupted move is
 * resumed by running it again; `abandon` removes `to` instead, leaving the volume as it was
 * on `from`. A `from` that is not a member is refused (MEMBER_NOT_FOUND): a move that
 * changes nothing must not say `done`.
 */
type MoveDeps = { sync: SyncEngine, volumes: VolumeService, store: Store, ops: { events: Pick<NodeEvents, 'emit'> } }

/** Each step of a move also goes to the node's event stream (`move`), and so does its failure. */
export async function moveVolume (d: MoveDeps, volume: string, from: unknown, to: unknown, opts: MoveOpts = {}): Promise<MoveResult> {
  const onProgress = (p: MoveProgress): void => { d.ops.events.emit('move', { ...p }); opts.onProgress?.(p) }
  try {
    return await move(d, volume, from, to, { ...opts, onProgress })
  } catch (err) {
    // The status page must not show a move that stopped as still copying.
    if (typeof from === 'string' && typeof to === 'string') d.ops.events.emit('move', { phase: 'failed', volume, from, to, error: (err as Error).message })
    throw err
  }
}

async function move (d: MoveDeps, volume: string, from: unknown, to: unknown, opts: MoveOpts): Promise<MoveResult> {
  if (typeof from !== 'string' || typeof to !== 'string') throw new InvalidInputError(Codes.BAD_REQUEST, 'a move needs from and to peer ids')
  if (from === to) throw new InvalidInputError(Codes.BAD_REQUEST, 'from and to are the same peer')
  let vol = await d.volumes.volume(volume)
  const report = (phase: MoveProgress['phase'], extra: Pick<MoveProgress, 'state' | 'progress' | 'removed'> = {}): void => opts.onProgress?.({ phase, volume, from, to, ...extra })
  if (opts.abandon === true) {
    if (vol.members.includes(to) && vol.members.includes(from)) {
      await d.sync.removeReplica(volume, to, { force: opts.force === true })
      report('abandoned', { removed: to })
    } else {
      report('abandoned', { removed: null })
    }
    return { ...(await d.store.requireVolume(volume)), phase: 'abandoned' }
  }
  if (!vol.members.includes(from)) {
    const already = vol.members.includes(to) ? ` (${to} is a member: if this move already completed, there is nothing left to do)` : ''
    throw new NotFoundError(Codes.MEMBER_NOT_FOUND, `${from} is not a member of '${volume}' (members: ${vol.members.join(', ')})${already}`, { volume, peerId: from })
  }
  let added: AnnounceResult[] = []
  if (!vol.members.includes(to)) {
    report('adding')
    const made = await d.sync.addReplica(volume, to, { force: opts.force === true })
    vol = made.volume
    added = made.announce
  }
  report('copying')
  // `to` reports bytes and files done; the rate and ETA are measured here, across its answers.
  const meter = new RateMeter()
  while (true) {
    if (opts.signal?.aborted === true) throw new ReplicantError(Codes.ABORTED, `move of '${volume}' interrupted while ${to} was copying: run it again to resume, or with --abandon`)
    const state = await d.sync.remoteState(vol, to).catch((err: Error) => ({ state: 'unreachable', error: err.message, progress: undefined }))
    const p = state.progress
    const done = typeof p?.bytesDone === 'number' ? p.bytesDone : undefined
    const measured = done !== undefined ? meter.sample(done, typeof p?.bytesTotal === 'number' ? p.bytesTotal : undefined) : undefined
    report('copying', { state: state.state, progress: p === undefined ? null : { ...p, ...measured } })
    if (state.state === 'steady') break
    await new Promise(resolve => setTimeout(resolve, 500))
  }
  report('removing')
  const removed = await d.sync.removeReplica(volume, from, { force: opts.force === true })
  const failed = notTakenEffect(removed.announce)
  if (failed !== undefined) throw new ReplicantError(Codes.MOVE_INTERRUPTED, `move of '${volume}': ${to} is steady but the removal of ${from} did not take effect: ${failed}; run the move again`)
  report('done')
  // Each member's answer to both changes, as add-replica and remove-replica print them.
  return { ...removed.volume, phase: 'done', announce: { added, removed: removed.announce } }
}
