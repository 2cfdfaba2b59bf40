import { NotMemberError } from '../core/errors.js'
import { holds, type VolumeRecord } from '../core/records.js'

type Config = Pick<VolumeRecord, 'name' | 'id' | 'generation' | 'members' | 'readers'>

/**
 * The index and chunk streams open to readers (peers granted read access, not members), per
 * (volume, peer), so that a revocation closes them at once instead of letting a long transfer
 * finish. Members' streams are not tracked. Bounded: one entry per open stream (the handlers
 * cap inbound streams) and one configuration per volume held here.
 */
export class ReaderStreams {
  private readonly open = new Map<string, Set<(err: Error) => void>>()
  /** The latest configuration seen per volume: a stream authorized against an older one is checked against it. */
  private readonly latest = new Map<string, Config>()

  /** Tracks one stream of `peer` authorized against `vol`; returns its release. */
  watch (vol: VolumeRecord, peer: string, abort: (err: Error) => void): () => void {
    if (vol.members.includes(peer)) return () => {}
    // Revoked between the authorization's read and now: closed at once.
    const known = this.latest.get(vol.name)
    if (known !== undefined && known.id === vol.id && known.generation > vol.generation && !holds(known, peer)) {
      abort(revoked(vol.name, peer))
      return () => {}
    }
    const key = `${vol.name}\x00${peer}`
    let set = this.open.get(key)
    if (set === undefined) { set = new Set(); this.open.set(key, set) }
    const s = set
    s.add(abort)
    return () => {
      s.delete(abort)
      if (s.size === 0 && this.open.get(key) === s) this.open.delete(key)
    }
  }

  /** A configuration was committed or adopted here: every stream of a peer it no longer lets read is aborted. Returns how many. */
  reconfigured (vol: Config): number {
    const known = this.latest.get(vol.name)
    if (known === undefined || known.id !== vol.id || known.generation <= vol.generation) {
      this.latest.set(vol.name, { name: vol.name, id: vol.id, generation: vol.generation, members: vol.members, readers: vol.readers })
    }
    let closed = 0
    for (const [key, set] of [...this.open]) {
      const [name, peer] = key.split('\x00')
      if (name !== vol.name || holds(vol, peer)) continue
      this.open.delete(key)
      for (const abort of set) { abort(revoked(name, peer)); closed++ }
    }
    return closed
  }

  /** Streams open to readers now (status, tests). */
  get size (): number {
    let n = 0
    for (const set of this.open.values()) n += set.size
    return n
  }
}

function revoked (volume: string, peer: string): NotMemberError {
  return new NotMemberError(`read access of ${peer} to volume '${volume}' was revoked`, { volume, peerId: peer })
}
