/** Members of a volume: add and remove one online, or move a replica from one node to another; grant and revoke readers. */
import type { Router } from '../router.js'
import type { MembershipAdmin } from '../node-api.js'
import { ReplicantError, Codes, isReplicantError } from '../../core/errors.js'
import { sendJson } from '../respond.js'
import { readJson, decodeSegment } from '../validate.js'

export function membershipRoutes (router: Router, node: MembershipAdmin): void {
  router.add('POST', /^\/v1\/volumes\/([^/]+)\/replicas$/, async (req, res, [vol]) => {
    const body = await readJson(req)
    sendJson(res, 200, await node.addReplica(decodeSegment(vol), body.peerId, { force: body.force }))
  })
  // An optional body {"force": true} makes the change without a majority of the members.
  router.add('DELETE', /^\/v1\/volumes\/([^/]+)\/replicas\/([^/]+)$/, async (req, res, [vol, peer]) => {
    const body = await readJson(req)
    sendJson(res, 200, await node.removeReplica(decodeSegment(vol), decodeSegment(peer), { force: body.force }))
  })
  // Read access for a peer that is not a member (replication/grants.ts).
  router.add('POST', /^\/v1\/volumes\/([^/]+)\/grants$/, async (req, res, [vol]) => {
    const body = await readJson(req)
    // `peers`: a list granted in one generation (replication/grants.ts).
    sendJson(res, 200, await node.grantReader(decodeSegment(vol), body.peers ?? body.peer, body.access ?? 'read'))
  })
  router.add('DELETE', /^\/v1\/volumes\/([^/]+)\/grants\/([^/]+)$/, async (_req, res, [vol, peer]) => {
    sendJson(res, 200, await node.revokeReader(decodeSegment(vol), decodeSegment(peer)))
  })
  // A one-time permission for a peer to create this volume here (the volume is not held yet).
  router.add('POST', /^\/v1\/volumes\/([^/]+)\/accept$/, async (req, res, [vol]) => {
    const body = await readJson(req)
    sendJson(res, 200, await node.acceptVolume(decodeSegment(vol), body.from))
  })
  router.add('POST', /^\/v1\/volumes\/([^/]+)\/move$/, async (req, res, [vol]) => {
    const body = await readJson(req)
    await node.volumes.volume(decodeSegment(vol))
    // Progress as NDJSON lines while the move runs; the last line is the result (or an error).
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    const controller = new AbortController()
    res.once('close', () => controller.abort())
    try {
      const result = await node.moveVolume(decodeSegment(vol), body.from, body.to, {
        abandon: body.abandon === true,
        force: body.force === true,
        signal: controller.signal,
        onProgress: (p) => { res.write(JSON.stringify({ progress: p }) + '\n') }
      })
      res.end(JSON.stringify({ result }) + '\n')
    } catch (err) {
      const e = isReplicantError(err) ? err : new ReplicantError(Codes.INTERNAL, (err as Error).message)
      res.end(JSON.stringify({ error: e.toJSON() }) + '\n')
    }
  })
}
