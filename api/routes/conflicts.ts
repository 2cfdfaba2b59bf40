/** Conflicts of a volume and their resolution (replication/conflicts.ts). */
import type { Router } from '../router.js'
import type { ConflictAdmin } from '../node-api.js'
import { sendJson } from '../respond.js'
import { readJson, decodeSegment } from '../validate.js'

export function conflictRoutes (router: Router, node: ConflictAdmin): void {
  router.add('GET', /^\/v1\/volumes\/([^/]+)\/conflicts$/, async (_req, res, [vol]) => {
    sendJson(res, 200, await node.conflicts(decodeSegment(vol)))
  })
  router.add('POST', /^\/v1\/volumes\/([^/]+)\/conflicts\/resolve$/, async (req, res, [vol]) => {
    const body = await readJson(req)
    sendJson(res, 200, await node.resolveConflict(decodeSegment(vol), body.path, body.keep))
  })
}
