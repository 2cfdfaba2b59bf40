/**
 * Fault injection, for nodes started for testing only (topologies, chaos runs). A partition
 * is a set of blocked peers, refused both ways by the connection gater, with existing
 * connections hung up; a slow or lossy link delays, caps or loses this node's replies.
 */
import type { Router } from '../router.js'
import type { FaultControls } from '../node-api.js'
import type { BlockedList, CrashList, FaultsResponse, LinkList } from '../types.js'
import { CRASH_POINTS, armCrash, armedCrashes, disarmCrashes, isCrashPoint } from '../../core/crash-points.js'
import { InvalidInputError, Codes } from '../../core/errors.js'
import { sendJson } from '../respond.js'
import { readJson, peerList, requiredPeers, linkShape, optionalString } from '../validate.js'

export function faultRoutes (router: Router, node: FaultControls): void {
  const blocked = (): string[] => [...node.peers.blocked].sort()
  router.add('GET', /^\/v1\/faults$/, (_req, res) => {
    const body: FaultsResponse = { blocked: blocked(), links: node.links.list(), crashes: armedCrashes() }
    sendJson(res, 200, body)
  })
  router.add('POST', /^\/v1\/faults\/(link|unlink)$/, async (req, res, [action]) => {
    const body = await readJson(req)
    if (action === 'link') {
      const peers = requiredPeers(body.peers, 'link')
      const shape = linkShape(body)
      try {
        node.links.set(peers, shape, optionalString(body, 'seed'))
      } catch (err) {
        throw new InvalidInputError(Codes.BAD_REQUEST, (err as Error).message)
      }
    } else {
      node.links.clear(peerList(body.peers))
    }
    const answer: LinkList = { links: node.links.list() }
    sendJson(res, 200, answer)
  })
  // The node kills itself (SIGKILL) at the named point, after letting `skip` passes through;
  // `{}` disarms every point.
  router.add('POST', /^\/v1\/faults\/crash$/, async (req, res) => {
    const body = await readJson(req)
    if (body.point === undefined) {
      disarmCrashes()
    } else {
      if (typeof body.point !== 'string' || !isCrashPoint(body.point)) {
        throw new InvalidInputError(Codes.BAD_REQUEST, `point must be one of ${Object.keys(CRASH_POINTS).join(', ')}`)
      }
      const skip = body.skip ?? 0
      if (typeof skip !== 'number' || !Number.isInteger(skip) || skip < 0 || skip > 1_000_000) throw new InvalidInputError(Codes.BAD_REQUEST, 'skip must be an integer 0-1000000')
      armCrash(body.point, skip)
    }
    const answer: CrashList = { crashes: armedCrashes() }
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
