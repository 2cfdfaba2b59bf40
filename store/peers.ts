import { encode, decode, asPeerRecord } from '../core/codec.js'
import type { PeerRecord } from '../core/records.js'
import { SEP, volumeRange, type StoreContext, type Op } from './store-context.js'

/**
 * What this node remembers of its peers: their records (addresses), per volume how far it has
 * pulled each peer's change log (watermarks), and how far each peer has applied its own
 * (applied marks).
 */
export class Peers {
  constructor (private readonly ctx: StoreContext) {}

  async putPeer (peer: PeerRecord): Promise<void> {
    this.ctx.assertOpen()
    await this.ctx.sub.peers.put(peer.peerId, encode(peer))
  }

  async getPeer (peerId: string): Promise<PeerRecord | undefined> {
    this.ctx.assertOpen()
    const value = await this.ctx.sub.peers.get(peerId)
    return value === undefined ? undefined : asPeerRecord(decode(value))
  }

  async deletePeer (peerId: string): Promise<void> {
    this.ctx.assertOpen()
    await this.ctx.sub.peers.del(peerId)
  }

  async listPeers (): Promise<PeerRecord[]> {
    this.ctx.assertOpen()
    const out: PeerRecord[] = []
    for await (const value of this.ctx.sub.peers.values()) out.push(asPeerRecord(decode(value)))
    return out
  }

  async getWatermark (vol: string, peerId: string): Promise<number> {
    this.ctx.assertOpen()
    return await this.ctx.sub.watermarks.get(`${vol}${SEP}${peerId}`) ?? 0
  }

  async listWatermarks (vol: string): Promise<Record<string, number>> {
    this.ctx.assertOpen()
    return await this.perPeer(this.ctx.sub.watermarks, vol)
  }

  /** Forgets every watermark of a volume: the next pull from each peer compares the full index. */
  async clearWatermarks (vol: string): Promise<void> {
    this.ctx.assertOpen()
    await this.ctx.mutex.run(async () => {
      const ops: Op[] = []
      for await (const key of this.ctx.sub.watermarks.keys(volumeRange(vol))) ops.push({ type: 'del', key, sublevel: this.ctx.sub.watermarks })
      if (ops.length > 0) await this.ctx.write(ops)
    })
  }

  /** Records how far `peer` has applied this node's change log of `vol` (from its index requests). */
  async noteApplied (vol: string, peer: string, seq: number): Promise<void> {
    this.ctx.assertOpen()
    const key = `${vol}${SEP}${peer}`
    if ((await this.ctx.sub.applied.get(key) ?? -1) < seq) await this.ctx.sub.applied.put(key, seq)
  }

  async listApplied (vol: string): Promise<Record<string, number>> {
    this.ctx.assertOpen()
    return await this.perPeer(this.ctx.sub.applied, vol)
  }

  /** A volume's entries of a (volume, peer) -> seq sublevel, by peer. */
  private async perPeer (sublevel: StoreContext['sub']['watermarks'], vol: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {}
    for await (const [key, value] of sublevel.iterator(volumeRange(vol))) out[key.slice(vol.length + 1)] = value
    return out
  }
}
