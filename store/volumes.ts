import { ConflictError, NotFoundError, Codes } from '../core/errors.js'
import { encode, decode, asVolumeRecord } from '../core/codec.js'
import type { VolumeRecord } from '../core/records.js'
import type { StoreContext, Op } from './store-context.js'

/** Volume records: one per volume this node holds a replica of, keyed by name. */
export class Volumes {
  constructor (private readonly ctx: StoreContext) {}

  async getVolume (name: string): Promise<VolumeRecord | undefined> {
    this.ctx.assertOpen()
    const value = await this.ctx.volumeRecord(name)
    return value === undefined ? undefined : asVolumeRecord(decode(value))
  }

  async requireVolume (name: string): Promise<VolumeRecord> {
    const vol = await this.getVolume(name)
    if (vol === undefined) throw new NotFoundError(Codes.VOLUME_NOT_FOUND, `no volume named '${name}' on this node`, { volume: name })
    return vol
  }

  async listVolumes (): Promise<VolumeRecord[]> {
    this.ctx.assertOpen()
    return await this.all()
  }

  async createVolume (vol: VolumeRecord): Promise<VolumeRecord> {
    this.ctx.assertOpen()
    // A record open() could not decode must never be written (it would brick the store).
    asVolumeRecord(vol)
    return await this.ctx.mutex.run(async () => {
      if (await this.ctx.sub.volumes.has(vol.name)) {
        throw new ConflictError(Codes.VOLUME_EXISTS, `volume '${vol.name}' already exists`, { volume: vol.name })
      }
      await this.ctx.write([this.putOp(vol)])
      return vol
    })
  }

  /** Read-modify-write of a volume record under the commit mutex. */
  async updateVolume (name: string, fn: (vol: VolumeRecord) => VolumeRecord): Promise<VolumeRecord> {
    this.ctx.assertOpen()
    return await this.ctx.mutex.run(async () => {
      const next = fn(await this.requireVolume(name))
      await this.ctx.write([{ type: 'put', key: name, value: encode(next), sublevel: this.ctx.sub.volumes }])
      return next
    })
  }

  /** The batch operation that writes `vol` (for batches that change a volume with other sublevels). */
  putOp (vol: VolumeRecord): Op {
    return { type: 'put', key: vol.name, value: encode(vol), sublevel: this.ctx.sub.volumes }
  }

  /** Names of the volumes whose dirty flag is set: at open, those not closed cleanly. */
  async dirtyNames (): Promise<string[]> {
    return (await this.all()).filter(v => v.dirty).map(v => v.name)
  }

  /** The operations of a clean close: clear every dirty flag. */
  async cleanCloseOps (): Promise<Op[]> {
    return (await this.all()).filter(v => v.dirty).map(v => this.putOp({ ...v, dirty: false }))
  }

  private async all (): Promise<VolumeRecord[]> {
    const out: VolumeRecord[] = []
    for await (const value of this.ctx.sub.volumes.values()) out.push(asVolumeRecord(decode(value)))
    return out
  }
}
