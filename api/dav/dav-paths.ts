/** Where a WebDAV request points: `/dav/VOLUME/path`, decoded and checked; hrefs for answers. */
import type { IncomingMessage } from 'node:http'
import { InvalidInputError, ReplicantError, Codes } from '../../core/errors.js'
import { normalizePath, validateVolumeName } from '../../core/paths.js'
import { decodeSegment } from '../validate.js'

/** `/dav/VOLUME` and anything under it (the second group is empty or starts with `/`). */
export const DAV_ROUTE = /^\/dav\/([^/]+)(.*)$/

export interface DavTarget {
  volume: string
  /** `/` for the volume itself, else a normalised path (core/paths.ts). */
  path: string
}

/** The target of `/dav/VOL` + `rest` (raw, percent-encoded; a trailing `/` is allowed). */
export function targetOf (vol: string, rest: string | undefined): DavTarget {
  const volume = validateVolumeName(decodeSegment(vol))
  let raw = rest ?? '/'
  if (raw.length > 1 && raw.endsWith('/')) raw = raw.slice(0, -1)
  if (raw === '/' || raw === '') return { volume, path: '/' }
  return { volume, path: normalizePath(raw.split('/').map(decodeSegment).join('/')) }
}

/** The href of a resource in an answer (each segment percent-encoded; folders end in `/`). */
export function hrefOf (volume: string, path: string, folder: boolean): string {
  const segs = path === '/' ? '' : path.split('/').slice(1).map(encodeURIComponent).map(s => '/' + s).join('')
  return `/dav/${encodeURIComponent(volume)}${segs}${folder ? '/' : ''}`
}

export function parentOf (path: string): string {
  const i = path.lastIndexOf('/')
  return i <= 0 ? '/' : path.slice(0, i)
}

export function baseName (path: string): string {
  return path === '/' ? '' : path.slice(path.lastIndexOf('/') + 1)
}

/** A URL (absolute or a path) that names a resource of this server: a Destination, or a tagged If list. */
export function targetOfUrl (req: IncomingMessage, value: string): DavTarget {
  let url: URL
  try { url = new URL(value, 'http://dav.invalid') } catch { throw new InvalidInputError(Codes.BAD_REQUEST, `not a URL: ${value}`) }
  if (url.host !== 'dav.invalid' && url.host.toLowerCase() !== (req.headers.host ?? '').toLowerCase()) {
    throw new ReplicantError(Codes.BAD_DESTINATION, `${value} is on another server`)
  }
  const m = DAV_ROUTE.exec(url.pathname)
  if (m === null) throw new ReplicantError(Codes.BAD_DESTINATION, `${value} is not under /dav/VOLUME/`)
  return targetOf(m[1], m[2])
}

/** The Destination header of a COPY or MOVE, in the same volume. */
export function destinationOf (req: IncomingMessage, volume: string): DavTarget {
  const value = req.headers.destination
  if (typeof value !== 'string' || value === '') throw new InvalidInputError(Codes.BAD_REQUEST, 'COPY and MOVE need a Destination header')
  const t = targetOfUrl(req, value)
  if (t.volume !== volume) throw new ReplicantError(Codes.BAD_DESTINATION, `COPY and MOVE stay within a volume (${volume}, not ${t.volume})`)
  return t
}
