/**
 * The If header of RFC 4918 §10.4: lists of conditions (lock tokens and entity tags), untagged
 * (about the request's resource) or tagged with a resource. The header is true when one list
 * is; a list is true when all its conditions are. Every lock token in it counts as submitted.
 */
import { InvalidInputError, Codes } from '../../core/errors.js'

export interface IfCondition { not: boolean, token?: string, etag?: string }
export interface IfList { resource?: string, conditions: IfCondition[] }

/** The state a condition is checked against: the resource's entity tag and the tokens of the locks on it. */
export interface ResourceState { etag?: string, tokens: ReadonlySet<string> }

export function parseIf (header: string | undefined): IfList[] {
  if (header === undefined) return []
  const lists: IfList[] = []
  let i = 0
  let resource: string | undefined
  const s = header
  const fail = (): never => { throw new InvalidInputError(Codes.BAD_REQUEST, `malformed If header: ${s.slice(0, 200)}`) }
  const skip = (): void => { while (i < s.length && /\s/.test(s[i])) i++ }
  const until = (end: string): string => {
    const j = s.indexOf(end, i)
    if (j < 0) fail()
    const v = s.slice(i, j)
    i = j + 1
    return v
  }
  while (true) {
    skip()
    if (i >= s.length) break
    if (s[i] === '<') { i++; resource = until('>'); continue }
    if (s[i] !== '(') fail()
    i++
    const conditions: IfCondition[] = []
    while (true) {
      skip()
      if (s[i] === ')') { i++; break }
      let not = false
      if (s.slice(i, i + 3).toLowerCase() === 'not') { not = true; i += 3; skip() }
      if (s[i] === '<') { i++; conditions.push({ not, token: until('>') }) } else if (s[i] === '[') { i++; conditions.push({ not, etag: until(']').trim() }) } else fail()
    }
    if (conditions.length === 0) fail()
    lists.push({ resource, conditions })
  }
  return lists
}

/** Lock tokens the header names (submitted with the request). */
export function submittedTokens (lists: IfList[]): Set<string> {
  const out = new Set<string>()
  for (const l of lists) for (const c of l.conditions) if (c.token !== undefined) out.add(c.token)
  return out
}

/** Whether the header holds; `stateOf` gives the state of the request's resource (undefined) or a tagged one. */
export async function evaluateIf (lists: IfList[], stateOf: (resource: string | undefined) => Promise<ResourceState>): Promise<boolean> {
  if (lists.length === 0) return true
  for (const l of lists) {
    const state = await stateOf(l.resource)
    const holds = l.conditions.every(c => {
      const match = c.token !== undefined ? state.tokens.has(c.token) : (state.etag !== undefined && c.etag === state.etag)
      return c.not ? !match : match
    })
    if (holds) return true
  }
  return false
}

/** A Lock-Token header's token, with or without the angle brackets (Windows leaves them out). */
export function lockTokenHeader (header: string | undefined): string | undefined {
  if (header === undefined) return undefined
  const t = header.trim().replace(/^<(.*)>$/, '$1').trim()
  return t === '' ? undefined : t
}
