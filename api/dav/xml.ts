/**
 * XML of WebDAV bodies: request bodies read (bounded) and parsed by saxes with namespaces into a
 * small tree; answers written as strings with every name's namespace declared where it is used.
 */
import type { IncomingMessage } from 'node:http'
import { SaxesParser } from 'saxes'
import { readBounded } from '../validate.js'
import { InvalidInputError, Codes } from '../../core/errors.js'

export const DAV_NS = 'DAV:'
/** Largest XML request body (PROPFIND, PROPPATCH, LOCK): they name properties, they carry no data. */
export const MAX_XML_BODY = 256 * 1024

export interface XmlElement {
  ns: string
  local: string
  attrs: Array<{ ns: string, local: string, value: string }>
  children: XmlNode[]
}
export type XmlNode = XmlElement | string

export function isElement (n: XmlNode): n is XmlElement { return typeof n !== 'string' }

/** The child elements of `el` (text and whitespace dropped). */
export function elements (el: XmlElement): XmlElement[] { return el.children.filter(isElement) }

export function textOf (el: XmlElement): string {
  return el.children.map(c => isElement(c) ? textOf(c) : c).join('')
}

/** The request body parsed, or undefined when it is empty. Malformed XML is BAD_REQUEST (400). */
export async function readXml (req: IncomingMessage): Promise<XmlElement | undefined> {
  const text = (await readBounded(req, MAX_XML_BODY, 'XML body')).toString('utf8')
  if (text.trim() === '') return undefined
  return parseXml(text)
}

export function parseXml (text: string): XmlElement {
  const parser = new SaxesParser({ xmlns: true })
  const stack: XmlElement[] = []
  let root: XmlElement | undefined
  let failure: Error | undefined
  parser.on('error', (e) => { failure ??= e })
  parser.on('doctype', () => { failure ??= new Error('a DOCTYPE is not accepted') })
  parser.on('opentag', (tag) => {
    const attrs: XmlElement['attrs'] = []
    for (const a of Object.values(tag.attributes)) {
      // Namespace declarations are how names are spelled, not content; they are written anew.
      if (a.prefix === 'xmlns' || a.name === 'xmlns') {
        if (a.prefix === 'xmlns' && a.value === '') failure ??= new Error(`prefix ${a.local} bound to the empty namespace`)
        continue
      }
      attrs.push({ ns: a.uri, local: a.local, value: a.value })
    }
    const el: XmlElement = { ns: tag.uri ?? '', local: tag.local ?? tag.name, attrs, children: [] }
    if (stack.length > 0) stack[stack.length - 1].children.push(el)
    else root = el
    stack.push(el)
  })
  parser.on('closetag', () => { stack.pop() })
  const onText = (t: string): void => { if (stack.length > 0) stack[stack.length - 1].children.push(t) }
  parser.on('text', onText)
  parser.on('cdata', onText)
  try {
    parser.write(text).close()
  } catch (e) {
    failure ??= e as Error
  }
  if (failure !== undefined || root === undefined) {
    throw new InvalidInputError(Codes.BAD_REQUEST, `request body is not well-formed XML: ${failure?.message ?? 'no element'}`)
  }
  return root
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }
export function esc (s: string): string { return s.replace(/[&<>"]/g, c => ESC[c]) }

/**
 * `el` as XML text, each element and namespaced attribute declaring its own prefix (so the
 * value can be dropped into any answer and keeps its namespaces).
 */
export function serialize (el: XmlElement, depth = 0): string {
  const p = `n${depth}`
  const name = el.ns === '' ? el.local : `${p}:${el.local}`
  const decl = el.ns === '' ? ' xmlns=""' : ` xmlns:${p}="${esc(el.ns)}"`
  const attrs = el.attrs.map((a, i) => a.ns === ''
    ? ` ${a.local}="${esc(a.value)}"`
    : a.ns === 'http://www.w3.org/XML/1998/namespace' ? ` xml:${a.local}="${esc(a.value)}"` : ` xmlns:a${depth}_${i}="${esc(a.ns)}" a${depth}_${i}:${a.local}="${esc(a.value)}"`).join('')
  const inner = el.children.map(c => isElement(c) ? serialize(c, depth + 1) : esc(c)).join('')
  return `<${name}${decl}${attrs}>${inner}</${name}>`
}

/** An empty element `ns:local` for a property name (404 lists, propname answers). */
export function emptyElement (ns: string, local: string): string {
  return ns === DAV_NS ? `<D:${local}/>` : ns === '' ? `<${local} xmlns=""/>` : `<x:${local} xmlns:x="${esc(ns)}"/>`
}
