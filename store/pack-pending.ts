import { hashHex } from '../core/hash.js'

interface Pending { key: Buffer, value: Buffer }

/**
 * Chunk locations whose bytes are written but not yet fsynced. They stay here, in memory, until
 * PackChunkStore.sync() has fsynced the packs: only then are they written to level. So a
 * location never reaches disk before its bytes (another commit's synced level batch would carry
 * it along, and a later put would then reuse a chunk whose bytes a power loss took).
 */
export class PendingLocations {
  private readonly byHex = new Map<string, Pending>()
  /** One pack id per putMany whose locations wait here (released from `inflight` at flush). */
  private packs: number[] = []

  get size (): number { return this.byHex.size }

  add (hashes: Uint8Array[], locs: Buffer[], pack: number): void {
    hashes.forEach((h, i) => { this.byHex.set(hashHex(h), { key: Buffer.from(h), value: locs[i] }) })
    this.packs.push(pack)
  }

  get (hash: Uint8Array): Buffer | undefined {
    return this.byHex.get(hashHex(hash))?.value
  }

  delete (hashes: Uint8Array[]): void {
    for (const h of hashes) this.byHex.delete(hashHex(h))
  }

  /**
   * Every entry now, for the caller to fsync their bytes and write them to level. They stay
   * readable here until written (settle): a read in between must still find them.
   */
  take (): { entries: Pending[], packs: number[] } {
    const entries = [...this.byHex.values()]
    const packs = this.packs
    this.packs = []
    return { entries, packs }
  }

  /** Forgets the entries now in level (not those a later put replaced meanwhile). */
  settle (entries: Pending[]): void {
    for (const e of entries) {
      const hex = e.key.toString('hex')
      if (this.byHex.get(hex) === e) this.byHex.delete(hex)
    }
  }
}
