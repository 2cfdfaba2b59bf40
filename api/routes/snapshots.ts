/** Snapshots of a volume, and dumps of them: take, list, delete, dump one, restore a dump. */
import { mkdir, rm, open } from 'node:fs/promises'
import { join } from 'node:path'
import type { Router } from '../router.js'
import type { SnapshotAccess } from '../node-api.js'
import type { SnapshotCreated, SnapshotDeleted, SnapshotList } from '../types.js'
import { writeDump, restoreDump, verifyDump, spooled, tempName, type DumpHeader } from '../../replication/dump.js'
import { sendJson, sendStream } from '../respond.js'
import { readJson, decodeSegment, optionalString } from '../validate.js'
import { InvalidInputError, Codes } from '../../core/errors.js'

export function snapshotRoutes (router: Router, node: SnapshotAccess): void {
  router.add('GET', /^\/v1\/volumes\/([^/]+)\/dump$/, async (_req, res, [vol], url) => {
    const v = await node.volumes.volume(decodeSegment(vol))
    const snapName = url.searchParams.get('snapshot')
    if (snapName === null) throw new InvalidInputError(Codes.BAD_REQUEST, 'a dump needs ?snapshot=NAME')
    const snap = await node.store.getSnapshot(v.name, snapName)
    const since = url.searchParams.get('since')
    const base = since !== null ? await node.store.getSnapshot(v.name, since) : undefined
    await sendStream(res, 200, {
      'content-type': 'application/vnd.replicant.dump',
      'content-disposition': `attachment; filename="${v.name}-${snap.name}.dump"`
    }, writeDump(node.store, v, snap, base, node.peerId))
  })
  router.add('POST', /^\/v1\/restore$/, async (req, res) => {
    // Spooled to disk and verified as it arrives (nothing touches the store before the whole
    // dump checks out), then applied from the spool: constant memory, two passes over the bytes.
    const dir = join(node.dataDir, 'tmp')
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const file = join(dir, tempName())
    try {
      const fh = await open(file, 'w', 0o600) // a spooled dump holds plaintext
      const upload = spooled(req, fh)
      let header: DumpHeader
      try {
        header = (await verifyDump(upload.pieces)).header
      } catch (err) {
        await upload.drain().catch(() => {})
        throw err
      } finally {
        await fh.close()
      }
      sendJson(res, 200, await restoreDump(node.store, file, header))
    } finally {
      await rm(file, { force: true })
    }
  })
  router.add('GET', /^\/v1\/volumes\/([^/]+)\/snapshots$/, async (_req, res, [vol]) => {
    const v = await node.volumes.volume(decodeSegment(vol))
    const body: SnapshotList = { snapshots: await node.store.listSnapshots(v.name) }
    sendJson(res, 200, body)
  })
  router.add('POST', /^\/v1\/volumes\/([^/]+)\/snapshots$/, async (req, res, [vol]) => {
    const name = optionalString(await readJson(req), 'name')
    const snap = await node.volumes.createSnapshot(decodeSegment(vol), name)
    // Nothing is copied at creation: the work done does not grow with the volume.
    const body: SnapshotCreated = { ...snap, recordsCopied: 0 }
    sendJson(res, 201, body)
  })
  router.add('DELETE', /^\/v1\/volumes\/([^/]+)\/snapshots\/([^/]+)$/, async (_req, res, [vol, name]) => {
    const v = await node.volumes.volume(decodeSegment(vol))
    const body: SnapshotDeleted = { name: decodeSegment(name), ...await node.store.deleteSnapshot(v.name, decodeSegment(name)) }
    sendJson(res, 200, body)
  })
}
