/**
 * Fault injection, for nodes started for testing only (topologies, chaos runs). A partition
 * is a set of blocked peers, refused both ways by the connection gater, with existing
 * connections hung up; a slow or lossy link delays, caps or loses this node's replies.
 */
import type { Router } from '../router.js'
import type { FaultControls } from '../node-api.js'
import type { BlockedList, FaultsResponse, LinkList } from '../types.js'
import { InvalidInputError, Codes } from '../../core/errors.js'
import { sendJson } from '../respond.js'
import { readJson, peerList, requiredPeers, linkShape } from '../validate.js'

export function faultRoutes (router: Router, node: FaultControls): void {
  const blocked = (): string[] => [...node.peers.blocked].sort()
  router.add('GET', /^\/v1\/faults$/, (_req, res) => {
    const body: FaultsResponse = { blocked: blocked(), links: node.links.list() }
    sendJson(res, 200, body)
  })
  router.add('POST', /^\/v1\/faults\/(link|unlink)$/, async (req, res, [action]) => {
    const body = await readJson(req)
    if (action === 'link') {
      const peers = requiredPeers(body.peers, 'link')
      const shape = linkShape(body)
      try {
        node.links.set(peers, shape)
      } catch (err) {
        throw new InvalidInputError(Codes.BAD_REQUEST, (err as Error).message)
      }
    } else {
      node.links.clear(peerList(body.peers))
    }
    const answer: LinkList = { links: node.links.list() }
    sendJson(res, 200, answer)
  })
  router.add('POST', /^\/v1\/faults\/(block|unblock)$/, async (req, res, [action]) => {
    const body = await readJson(req)
    if (action === 'block') await node.peers.block(requiredPeers(body.peers, 'block'))
    else node.peers.unblock(peerList(body.peers))
    const answer: BlockedList = { blocked: blocked() }
    sendJson(res, 200, answer)
  })
}
