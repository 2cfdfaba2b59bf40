import { InvalidInputError, Codes } from './errors.js'

export const MAX_PATH_BYTES = 4096
export const MAX_SEGMENT_BYTES = 255

/**
 * Normalises a file path inside a volume to the form `/a/b/c`. A leading `/` is optional on
 * input; `..`, `.`, empty segments (`a//b`, trailing `/`), NUL and control characters, lone
 * surrogates and backslashes are refused, so no path can escape the volume or alias another.
 */
export function normalizePath (input: unknown): string {
  if (typeof input !== 'string' || input.length === 0) {
    throw new InvalidInputError(Codes.BAD_PATH, 'path must be a non-empty string')
  }
  const raw = input.startsWith('/') ? input.slice(1) : input
  if (raw.length === 0) throw new InvalidInputError(Codes.BAD_PATH, 'path must name a file, not the volume root')
  if (Buffer.byteLength(input) > MAX_PATH_BYTES) {
    throw new InvalidInputError(Codes.BAD_PATH, `path is longer than ${MAX_PATH_BYTES} bytes`)
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(raw)) {
    throw new InvalidInputError(Codes.BAD_PATH, 'path contains NUL or control characters', { path: JSON.stringify(input) })
  }
  // A lone surrogate has no UTF-8 form: it would be stored as U+FFFD, so two different paths
  // would alias one key (and the record's path would differ from the one asked for).
  if (/\p{Cs}/u.test(raw)) {
    throw new InvalidInputError(Codes.BAD_PATH, 'path contains a lone surrogate (not valid Unicode)', { path: JSON.stringify(input) })
  }
  if (raw.includes('\\')) throw new InvalidInputError(Codes.BAD_PATH, 'path contains a backslash', { path: input })
  const segments = raw.split('/')
  for (const seg of segments) {
    if (seg === '') throw new InvalidInputError(Codes.BAD_PATH, 'path has an empty segment (// or a trailing /)', { path: input })
    if (seg === '.' || seg === '..') throw new InvalidInputError(Codes.BAD_PATH, `path segment '${seg}' is not allowed`, { path: input })
    if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES) {
      throw new InvalidInputError(Codes.BAD_PATH, `path segment is longer than ${MAX_SEGMENT_BYTES} bytes`, { path: input })
    }
  }
  return '/' + segments.join('/')
}

/** A listing prefix: empty or `/` means everything; otherwise it is normalised like a path. */
export function normalizePrefix (input: unknown): string {
  if (input === undefined || input === null || input === '' || input === '/') return '/'
  if (typeof input !== 'string') throw new InvalidInputError(Codes.BAD_PATH, 'prefix must be a string')
  const trailing = input.endsWith('/')
  const p = normalizePath(trailing ? input.slice(0, -1) : input)
  return trailing ? p + '/' : p
}

const VOLUME_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/

export function validateVolumeName (name: unknown): string {
  if (typeof name !== 'string' || !VOLUME_NAME.test(name)) {
    throw new InvalidInputError(Codes.BAD_VOLUME_NAME,
      'volume name must be 1-63 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit',
      { name: typeof name === 'string' ? name : String(name) })
  }
  return name
}
