/** GET /v1/status and GET /v1/peers: the node and who it knows. */
import type { Router } from '../router.js'
import type { StatusSource } from '../node-api.js'
import type { PeerList } from '../types.js'
import { sendJson } from '../respond.js'

export function statusRoutes (router: Router, node: StatusSource): void {
  router.add('GET', /^\/v1\/status$/, async (_req, res) => { sendJson(res, 200, await node.status()) })
  router.add('GET', /^\/v1\/peers$/, async (_req, res) => {
    const body: PeerList = { peers: await node.peers.list() }
    sendJson(res, 200, body)
  })
}
