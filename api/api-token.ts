/**
 * The HTTP API token: 32 random bytes (base64url) in DATA/api.token, mode 0600, made at `init`
 * or at the first start of a data dir that has none. The CLI reads it from there; nothing
 * here loads libp2p or level (client start-up time).
 */
import { open, readFile, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { ReplicantError, InvalidInputError, Codes } from '../core/errors.js'
import { renameDurably } from '../core/durable.js'

export const API_TOKEN_FILE = 'api.token'

/** What a token may look like: printable ASCII without spaces, long enough not to be guessed. */
const TOKEN_FORMAT = /^[\x21-\x7e]{16,512}$/

export function checkToken (token: string, what = 'API token'): string {
  if (!TOKEN_FORMAT.test(token)) throw new InvalidInputError(Codes.BAD_REQUEST, `${what} must be 16 to 512 printable characters without spaces`)
  return token
}

export function newApiToken (): string {
  return randomBytes(32).toString('base64url')
}

/** The token in `dataDir`, or undefined when the file does not exist. */
async function readIfAny (dataDir: string): Promise<string | undefined> {
  try {
    return checkToken((await readFile(join(dataDir, API_TOKEN_FILE), 'utf8')).trim(), `${API_TOKEN_FILE} in ${dataDir}`)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** The token the CLI sends to the node running on `dataDir`. */
export async function readApiToken (dataDir: string): Promise<string> {
  const token = await readIfAny(dataDir)
  if (token === undefined) throw new ReplicantError(Codes.NO_API_TOKEN, `no API token in ${dataDir} (run 'replicant init --data ${dataDir}', or pass --token / REPLICANT_TOKEN with --api-url)`)
  return token
}

/**
 * The data dir's token, created if it has none. A `token` given (tests, topologies) replaces
 * the file's, so that the CLI on this data dir sends the same one. Written whole or not at
 * all: a 0600 temp file, fsynced, renamed, the dir fsynced.
 */
export async function loadOrCreateApiToken (dataDir: string, token?: string): Promise<{ token: string, created: boolean }> {
  const existing = await readIfAny(dataDir)
  if (existing !== undefined && (token === undefined || token === existing)) return { token: existing, created: false }
  const value = token !== undefined ? checkToken(token) : newApiToken()
  const tmp = join(dataDir, `${API_TOKEN_FILE}.${process.pid}.tmp`)
  // 'wx' with mode 0600: the token is never readable by others, not even for a moment.
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(value + '\n')
  } catch (err) {
    await fh.close()
    await rm(tmp, { force: true })
    throw err
  }
  await fh.close()
  await renameDurably(tmp, join(dataDir, API_TOKEN_FILE))
  return { token: value, created: true }
}
