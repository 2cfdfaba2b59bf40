/** POST /v1/gc: chunk garbage collection, then a repack of mostly dead packs. */
import type { Router } from '../router.js'
import type { GcAdmin } from '../node-api.js'
import { sendJson } from '../respond.js'
import { readJson } from '../validate.js'

export function adminRoutes (router: Router, node: GcAdmin): void {
  router.add('POST', /^\/v1\/gc$/, async (req, res) => {
    sendJson(res, 200, await node.collectGarbage(await readJson(req)))
  })
}
