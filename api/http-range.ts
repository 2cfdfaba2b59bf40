import { ReplicantError, Codes } from '../core/errors.js'

/**
 * Parses a single-range `Range: bytes=...` header against a file of `size` bytes.
 * Returns undefined when the whole file should be sent (no header, or several ranges, which
 * RFC 9110 lets a server ignore); throws BAD_RANGE (416) when unsatisfiable.
 */
export function parseRange (header: string | undefined, size: number): { start: number, end: number } | undefined {
  if (header === undefined || header === '') return undefined
  // RFC 9110 §14.2: a Range with a unit the server does not know is ignored (whole file).
  if (!/^\s*bytes=/i.test(header)) return undefined
  const m = /^bytes=(\d*)-(\d*)$/i.exec(header.trim())
  if (m === null) {
    if (/^\s*bytes=.*,/i.test(header)) return undefined
    throw new ReplicantError(Codes.BAD_RANGE, `malformed Range header '${header}'`, { size })
  }
  const [, a, b] = m
  let start: number
  let end: number
  if (a === '' && b === '') throw new ReplicantError(Codes.BAD_RANGE, `malformed Range header '${header}'`, { size })
  if (a === '') {
    const suffix = Number(b)
    if (suffix === 0) throw new ReplicantError(Codes.BAD_RANGE, 'empty suffix range', { size })
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(a)
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1)
  }
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start > end || start >= size) {
    throw new ReplicantError(Codes.BAD_RANGE, `range ${header} is not satisfiable for a file of ${size} bytes`, { size })
  }
  return { start, end }
}
