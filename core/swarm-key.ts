/**
 * Private swarm keys in kubo's swarm.key format (libp2p PSK v1):
 *
 *   /key/swarm/psk/1.0.0/
 *   /base16/
 *   <64 hex digits: 32 random bytes>
 *
 * kubo also reads `/base64/`, so this does; the key is handed to @libp2p/pnet re-encoded as
 * base16 (the only encoding it reads, and it checks neither the header nor the codec line).
 * Parsed strictly here so a truncated or mistyped file fails at start, not as peers that
 * silently cannot connect.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { InvalidInputError, Codes } from './errors.js'

export const SWARM_KEY_HEADER = '/key/swarm/psk/1.0.0/'
export const SWARM_KEY_BYTES = 32

export interface SwarmKey {
  /** The 32 secret bytes. */
  key: Uint8Array
  /** Short, non-secret name of the key for status pages: equal keys, equal fingerprints. */
  fingerprint: string
  /** The key in the canonical base16 file format (what @libp2p/pnet takes). */
  encoded: Uint8Array
}

/** A new key file's text (with a trailing newline, like kubo's generators). */
export function generateSwarmKey (): string {
  return formatSwarmKey(randomBytes(SWARM_KEY_BYTES))
}

export function formatSwarmKey (key: Uint8Array): string {
  return `${SWARM_KEY_HEADER}\n/base16/\n${Buffer.from(key).toString('hex')}\n`
}

function bad (why: string, source: string): never {
  throw new InvalidInputError(Codes.BAD_SWARM_KEY, `${source} is not a swarm key: ${why} (make one with 'replicant swarm-key generate > swarm.key')`, { source })
}

/** Parses a key file's content; throws BAD_SWARM_KEY naming what is wrong (never the key). */
export function parseSwarmKey (text: string, source = 'swarm key'): SwarmKey {
  const lines = text.split(/\r\n|\r|\n/).map(l => l.trim())
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop()
  if (lines[0] !== SWARM_KEY_HEADER) bad(`the first line must be ${SWARM_KEY_HEADER}`, source)
  if (lines.length !== 3) bad('expected 3 lines: the header, the encoding and the key', source)
  const [, codec, body] = lines
  let key: Buffer
  if (codec === '/base16/') {
    if (!/^[0-9a-fA-F]*$/.test(body)) bad('the key line holds characters other than hex digits', source)
    if (body.length !== SWARM_KEY_BYTES * 2) bad(`the key must be ${SWARM_KEY_BYTES * 2} hex digits, found ${body.length}`, source)
    key = Buffer.from(body, 'hex')
  } else if (codec === '/base64/') {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) bad('the key line is not base64', source)
    key = Buffer.from(body, 'base64')
    if (key.byteLength !== SWARM_KEY_BYTES) bad(`the key must be ${SWARM_KEY_BYTES} bytes, found ${key.byteLength}`, source)
  } else {
    bad(`unsupported encoding line ${JSON.stringify(codec.slice(0, 32))} (expected /base16/ or /base64/)`, source)
  }
  return { key, fingerprint: swarmKeyFingerprint(key), encoded: new TextEncoder().encode(formatSwarmKey(key).trimEnd()) }
}

/** 16 hex digits of a domain-separated sha256: tells keys apart, reveals nothing of the key. */
export function swarmKeyFingerprint (key: Uint8Array): string {
  return createHash('sha256').update('replicant swarm key fingerprint\n').update(key).digest('hex').slice(0, 16)
}

/** Reads and parses a key file; `exposed` is true when group or others may read it (warn). */
export async function readSwarmKeyFile (file: string): Promise<SwarmKey & { exposed: boolean }> {
  let text: string
  let mode: number
  try {
    const st = await stat(file)
    if (!st.isFile()) bad('not a regular file', file)
    if (st.size > 1024) bad(`${st.size} bytes, far longer than a key file`, file)
    mode = st.mode
    text = await readFile(file, 'utf8')
  } catch (err) {
    if (err instanceof InvalidInputError) throw err
    throw new InvalidInputError(Codes.BAD_SWARM_KEY, `cannot read swarm key file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { source: file })
  }
  return { ...parseSwarmKey(text, file), exposed: (mode & 0o077) !== 0 }
}
