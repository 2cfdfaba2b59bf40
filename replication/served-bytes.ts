/** Chunk bytes this node served as a holder, per volume: the load a swarm puts on it (status `served`). */
export interface ServedView { bytes: number, chunks: number, requesters: number }

/** At most this many volumes counted (the volumes held here are few; a bound anyway). */
const MAX_VOLUMES = 1024

/**
 * Counts what the chunk handler sent, per volume and how many distinct peers it went to (up
 * to MAX_REQUESTERS each), so an operator and the swarm benchmark see which holder is a hot
 * spot (issue 19). Memory only, since the node started.
 */
export class ServedBytes {
  private readonly byVolume = new Map<string, { bytes: number, chunks: number, peers: Set<string> }>()

  add (volume: string, peer: string, bytes: number, chunks: number): void {
    let v = this.byVolume.get(volume)
    if (v === undefined) {
      if (this.byVolume.size >= MAX_VOLUMES) return
      v = { bytes: 0, chunks: 0, peers: new Set() }
      this.byVolume.set(volume, v)
    }
    v.bytes += bytes
    v.chunks += chunks
    if (v.peers.size < MAX_REQUESTERS) v.peers.add(peer)
  }

  view (): Record<string, ServedView> {
    return Object.fromEntries([...this.byVolume].map(([vol, v]) => [vol, { bytes: v.bytes, chunks: v.chunks, requesters: v.peers.size }]))
  }

  bytesOf (volume: string): number { return this.byVolume.get(volume)?.bytes ?? 0 }
}

/** Distinct requesters counted per volume. */
const MAX_REQUESTERS = 4096
