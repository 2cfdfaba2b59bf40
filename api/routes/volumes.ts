/** Volumes: list, create, inspect, change the write mode, compact the change log, drop a former member's replica. */
import type { Router } from '../router.js'
import type { VolumeAdmin } from '../node-api.js'
import type { VolumeList } from '../types.js'
import { InvalidInputError, Codes } from '../../core/errors.js'
import { sendJson } from '../respond.js'
import { readJson, decodeSegment } from '../validate.js'

export function volumeRoutes (router: Router, node: VolumeAdmin): void {
  router.add('GET', /^\/v1\/volumes$/, async (_req, res) => {
    const body: VolumeList = { volumes: await node.listVolumes() }
    sendJson(res, 200, body)
  })
  router.add('POST', /^\/v1\/volumes$/, async (req, res) => {
    sendJson(res, 201, await node.createVolume(await readJson(req)))
  })
  router.add('GET', /^\/v1\/volumes\/([^/]+)$/, async (_req, res, [vol]) => {
    sendJson(res, 200, await node.volumeInfo(decodeSegment(vol)))
  })
  router.add('DELETE', /^\/v1\/volumes\/([^/]+)$/, async (_req, res, [vol]) => {
    sendJson(res, 200, await node.dropVolume(decodeSegment(vol)))
  })
  router.add('PATCH', /^\/v1\/volumes\/([^/]+)$/, async (req, res, [vol]) => {
    const body = await readJson(req)
    if (body.writeMode === undefined) throw new InvalidInputError(Codes.BAD_REQUEST, 'nothing to change: send {"writeMode": "all" | "active"}')
    sendJson(res, 200, await node.setWriteMode(decodeSegment(vol), body.writeMode, { force: body.force }))
  })
  router.add('POST', /^\/v1\/volumes\/([^/]+)\/compact$/, async (req, res, [vol]) => {
    sendJson(res, 200, await node.compactLog(decodeSegment(vol), await readJson(req)))
  })
}
