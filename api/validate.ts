/** Request checks in one place: body limits, path segments, headers and the fields the routes read. */
import type { IncomingMessage } from 'node:http'
import { peerIdFromString } from '@libp2p/peer-id'
import { ReplicantError, InvalidInputError, Codes } from '../core/errors.js'
import type { LinkShape } from '../replication/link-faults.js'
import type { JsonObject } from './node-api.js'

/** Largest JSON request body accepted (volume create and other control calls). */
export const MAX_JSON_BODY = 64 * 1024

/**
 * The media type of a request's body (lower case, parameters dropped), or undefined without
 * a Content-Type header.
 */
function mediaType (req: IncomingMessage): string | undefined {
  return req.headers['content-type']?.split(';')[0].trim().toLowerCase()
}

/**
 * Parsed as JSON only when declared so: a browser sends text/plain, form and multipart bodies
 * cross-site without a preflight (a "simple" request), but never application/json. A request
 * without a body and without a Content-Type is `{}`.
 */
function checkJsonType (req: IncomingMessage): void {
  const type = mediaType(req)
  if (type === 'application/json') return
  const bodyless = type === undefined && req.headers['transfer-encoding'] === undefined && (req.headers['content-length'] ?? '0') === '0'
  if (bodyless) return
  throw new InvalidInputError(Codes.UNSUPPORTED_MEDIA_TYPE, `request body must be Content-Type application/json, not ${type ?? 'undeclared'}`)
}

/** A whole small request body (JSON, XML), refused (BODY_TOO_LARGE) past `max` bytes. */
export async function readBounded (req: IncomingMessage, max: number, what = 'request body'): Promise<Buffer> {
  let size = 0
  const parts: Buffer[] = []
  for await (const part of req as AsyncIterable<Buffer>) {
    size += part.byteLength
    if (size > max) throw new ReplicantError(Codes.BODY_TOO_LARGE, `${what} over ${max} bytes`)
    parts.push(part)
  }
  return Buffer.concat(parts)
}

/** The request body as a JSON object (an empty body is `{}`). */
export async function readJson (req: IncomingMessage): Promise<JsonObject> {
  checkJsonType(req)
  const bytes = await readBounded(req, MAX_JSON_BODY)
  if (bytes.byteLength === 0) return {}
  try {
    const body: unknown = JSON.parse(bytes.toString('utf8'))
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object')
    return body as JsonObject
  } catch (err) {
    throw new InvalidInputError(Codes.BAD_REQUEST, `request body is not a JSON object: ${(err as Error).message}`)
  }
}

/** A request's optional list of peer ids, checked (undefined when absent). */
export function peerList (peers: unknown): string[] | undefined {
  if (peers === undefined) return undefined
  if (!Array.isArray(peers) || !peers.every((p): p is string => typeof p === 'string' && p.length > 0 && p.length <= 128)) {
    throw new InvalidInputError(Codes.BAD_REQUEST, 'peers must be a list of peer ids')
  }
  for (const p of peers) {
    try { peerIdFromString(p) } catch { throw new InvalidInputError(Codes.BAD_REQUEST, `not a peer id: ${p}`) }
  }
  return peers
}

/** A non-empty list of peer ids, for the faults that need someone to act on. */
export function requiredPeers (peers: unknown, what: string): string[] {
  const list = peerList(peers)
  if (list === undefined || list.length === 0) throw new InvalidInputError(Codes.BAD_REQUEST, `${what} needs a non-empty list of peers`)
  return list
}

/** The link shape of POST /v1/faults/link: numbers where given, null or absent for the default (LinkFaults checks ranges). */
export function linkShape (body: JsonObject): Partial<LinkShape> {
  const shape: Partial<LinkShape> = {}
  for (const k of ['delayMs', 'bytesPerSecond', 'dropRate'] as const) {
    const v = body[k]
    if (v !== undefined && v !== null && typeof v !== 'number') throw new InvalidInputError(Codes.BAD_REQUEST, `${k} must be a number`)
    if (typeof v === 'number') shape[k] = v
  }
  return shape
}

/** An optional string field (undefined when absent). */
export function optionalString (body: JsonObject, field: string): string | undefined {
  const v = body[field]
  if (v !== undefined && typeof v !== 'string') throw new InvalidInputError(Codes.BAD_REQUEST, `${field} must be a string`)
  return v
}

/** One percent-encoded URL path segment. */
export function decodeSegment (s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    throw new InvalidInputError(Codes.BAD_PATH, 'path is not valid percent-encoding')
  }
}

/** A file path from the URL: each segment decoded (the volume service normalises and checks it). */
export function decodePath (path: string): string {
  return path.split('/').map(decodeSegment).join('/')
}

/** An integer header in `radix` (undefined when absent); written exactly, no junk, no sign tricks. */
export function intHeader (req: IncomingMessage, name: string, radix = 10): number | undefined {
  const v = req.headers[name]
  if (v === undefined || Array.isArray(v)) return undefined
  const n = parseInt(v, radix)
  if (!Number.isSafeInteger(n) || n.toString(radix) !== v.replace(/^0+(?=.)/, '')) {
    throw new InvalidInputError(Codes.BAD_REQUEST, `header ${name} must be an integer`, { value: v })
  }
  return n
}

/** The Content-Length a client declared (undefined when absent). */
export function declaredLength (req: IncomingMessage): number | undefined {
  return req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined
}
