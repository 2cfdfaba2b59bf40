import { encode, decode, asFileRecord } from '../core/codec.js'
import { hashHex } from '../core/hash.js'
import { chunkHashes, type NewFileRecord } from '../core/records.js'
import type { ChunkStore } from './chunk-store.js'
import { SEP, volumeRange, type StoreContext, type Op } from './store-context.js'

/** A write of an `all`-mode volume that a member has stored durably but not made visible. */
export interface PreparedWrite {
  txId: string
  volume: string
  coordinator: string
  record: NewFileRecord
  at: number
}

export type TxState = 'commit' | 'abort'

/**
 * Prepared writes of `all`-mode volumes and the transaction log that settles them: a
 * transaction is committed (in commitFiles' batch, see settleOps) or aborted, never both.
 */
export class PreparedWrites {
  /** Bumped by every change of the prepared sublevel; preparedChunks' cache is per value. */
  private gen = 0
  private readonly chunkSets = new Map<string, { gen: number, set: Set<string> }>()

  constructor (private readonly ctx: StoreContext, private readonly chunks: ChunkStore) {}

  /** Drops what preparedChunks remembers (the prepared sublevel changed under it). */
  invalidate (vol: string): void {
    this.gen++
    this.chunkSets.delete(vol)
  }

  /** Stores a prepared write durably (its chunks must already be in the chunk store). */
  async putPrepared (p: PreparedWrite): Promise<void> {
    this.ctx.assertOpen()
    await this.chunks.sync()
    await this.ctx.write([{ type: 'put', key: `${p.volume}${SEP}${p.txId}`, value: encode(p), sublevel: this.ctx.sub.prepared }])
    this.gen++
  }

  async getPrepared (vol: string, txId: string): Promise<PreparedWrite | undefined> {
    this.ctx.assertOpen()
    const v = await this.ctx.sub.prepared.get(`${vol}${SEP}${txId}`)
    if (v === undefined) return undefined
    const p = decode(v) as PreparedWrite
    return { ...p, record: asFileRecord({ ...p.record, seq: 0 }) }
  }

  async deletePrepared (vol: string, txId: string): Promise<void> {
    this.ctx.assertOpen()
    await this.ctx.write([{ type: 'del', key: `${vol}${SEP}${txId}`, sublevel: this.ctx.sub.prepared }])
    this.gen++
  }

  /**
   * The chunks (hex) of a volume's prepared writes, which its members may be served. Rebuilt
   * only when the prepared set changed: the chunk server asks per want-list, and a scan per
   * want-list of a large prepared file was quadratic (179,200 chunks: minutes instead of seconds).
   */
  async preparedChunks (vol: string): Promise<Set<string>> {
    const cached = this.chunkSets.get(vol)
    if (cached?.gen === this.gen) return cached.set
    const gen = this.gen
    const set = new Set<string>()
    for (const p of await this.listPrepared(vol)) for (const h of chunkHashes(p.record)) set.add(hashHex(h))
    this.chunkSets.set(vol, { gen, set })
    return set
  }

  async listPrepared (vol?: string): Promise<PreparedWrite[]> {
    this.ctx.assertOpen()
    const out: PreparedWrite[] = []
    const range = vol === undefined ? {} : volumeRange(vol)
    for await (const v of this.ctx.sub.prepared.values(range)) out.push(decode(v) as PreparedWrite)
    return out
  }

  /** Whether an `all`-mode transaction was recorded as committed here. */
  async txCommitted (vol: string, txId: string): Promise<boolean> {
    this.ctx.assertOpen()
    return await this.ctx.sub.txlog.get(`${vol}${SEP}${txId}`) === 'commit'
  }

  /** Records a transaction as aborted (so a late commit for it is refused). */
  async recordAbort (vol: string, txId: string): Promise<void> {
    this.ctx.assertOpen()
    await this.ctx.write([
      { type: 'put', key: `${vol}${SEP}${txId}`, value: 'abort', sublevel: this.ctx.sub.txlog },
      { type: 'del', key: `${vol}${SEP}${txId}`, sublevel: this.ctx.sub.prepared }
    ])
    this.gen++
  }

  async txState (vol: string, txId: string): Promise<TxState | undefined> {
    this.ctx.assertOpen()
    return await this.ctx.sub.txlog.get(`${vol}${SEP}${txId}`) as TxState | undefined
  }

  /**
   * The operations that record a transaction as committed and drop its prepared write, for
   * the caller's batch (commitFiles writes them with the records, atomically).
   */
  settleOps (vol: string, txId: string): Op[] {
    this.gen++
    return [
      { type: 'put', key: `${vol}${SEP}${txId}`, value: 'commit', sublevel: this.ctx.sub.txlog },
      { type: 'del', key: `${vol}${SEP}${txId}`, sublevel: this.ctx.sub.prepared }
    ]
  }
}
