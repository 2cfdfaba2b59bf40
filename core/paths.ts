import { InvalidInputError, Codes } from './errors.js'

export const MAX_PATH_BYTES = 4096
export const MAX_SEGMENT_BYTES = 255

/**
 * Characters refused in names because they make one name display as another, or hide:
 * bidirectional controls (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069: a right-to-left
 * override shows `txt.exe` for `exe.txt`), the deprecated format controls U+206A-U+206F, C1
 * controls (U+0080-U+009F), zero-width and invisible ones (U+200B zero-width space, U+2060-U+2064
 * word joiner and invisible operators, U+FEFF byte order mark, U+00AD soft hyphen, U+180E),
 * line and paragraph separators (U+2028/9: they break lines in listings and logs), interlinear
 * annotation controls (U+FFF9-U+FFFB) and the tag characters (U+E0000-U+E007F, invisible text
 * that can be smuggled after any character). Not refused: U+200C/U+200D (zero-width non-joiner
 * and joiner), which Persian, Indic scripts and emoji sequences need, and variation selectors.
 */
const UNSAFE = /[\u0080-\u009f\u00ad\u061c\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]|[\u{e0000}-\u{e007f}]/u

function codePoint (ch: string): string {
  return 'U+' + ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')
}

/**
 * Normalises a file path inside a volume to the form `/a/b/c`, in Unicode NFC (so `café`
 * typed precomposed or decomposed names one file). A leading `/` is optional on input; `..`,
 * `.`, empty segments (`a//b`, trailing `/`), NUL and control characters, lone surrogates,
 * backslashes and the look-alike characters of UNSAFE are refused, so no path can escape the
 * volume or alias or impersonate another. A path is canonical when normalizePath returns it
 * unchanged: what peers send must be (protocols check it).
 */
export function normalizePath (input: unknown): string {
  if (typeof input !== 'string' || input.length === 0) {
    throw new InvalidInputError(Codes.BAD_PATH, 'path must be a non-empty string')
  }
  // A lone surrogate has no UTF-8 form: it would be stored as U+FFFD, so two different paths
  // would alias one key (and the record's path would differ from the one asked for).
  if (/\p{Cs}/u.test(input)) {
    throw new InvalidInputError(Codes.BAD_PATH, 'path contains a lone surrogate (not valid Unicode)', { path: JSON.stringify(input) })
  }
  // Composition at most halves the length in UTF-8 bytes: a longer input is refused unnormalised.
  if (input.length > 2 * MAX_PATH_BYTES) throw new InvalidInputError(Codes.BAD_PATH, `path is longer than ${MAX_PATH_BYTES} bytes`)
  const nfc = input.normalize('NFC')
  const raw = nfc.startsWith('/') ? nfc.slice(1) : nfc
  if (raw.length === 0) throw new InvalidInputError(Codes.BAD_PATH, 'path must name a file, not the volume root')
  if (Buffer.byteLength(nfc) > MAX_PATH_BYTES) {
    throw new InvalidInputError(Codes.BAD_PATH, `path is longer than ${MAX_PATH_BYTES} bytes`)
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(raw)) {
    throw new InvalidInputError(Codes.BAD_PATH, 'path contains NUL or control characters', { path: JSON.stringify(input) })
  }
  const unsafe = UNSAFE.exec(raw)
  if (unsafe !== null) {
    const cp = codePoint(unsafe[0])
    throw new InvalidInputError(Codes.BAD_PATH, `path contains ${cp}, an invisible or bidirectional control character (a name could look like another)`, { path: JSON.stringify(input), char: cp })
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
