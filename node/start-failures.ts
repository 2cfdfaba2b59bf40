import { readdir, rm, rmdir } from 'node:fs/promises'
import { join } from 'node:path'
import { ReplicantError, Codes } from '../core/errors.js'
import { IDENTITY_FILE } from './identity.js'
import { API_TOKEN_FILE } from '../api/api-token.js'

/** libp2p's listen failure (a multi-line message with a stack) as one line, when a port is taken. */
export function addressInUse (err: Error, listen: string[]): ReplicantError | undefined {
  const cause = (err as { cause?: { message?: unknown } }).cause
  const text = `${err.message} ${typeof cause?.message === 'string' ? cause.message : ''}`
  if (!text.includes('EADDRINUSE')) return undefined
  const taken = listen.filter(a => text.includes(`${a}:`))
  return new ReplicantError(Codes.ADDRESS_IN_USE, `libp2p listen address ${(taken.length > 0 ? taken : listen).join(', ')} already in use (choose another with --listen)`, { listen })
}

/** What a first start creates in an empty (or absent) data dir; the dir itself stays if it existed. */
export async function removeInitialised (dataDir: string, created: boolean): Promise<void> {
  for (const f of [IDENTITY_FILE, 'store', 'chunks', 'api.json', API_TOKEN_FILE]) await rm(join(dataDir, f), { recursive: true, force: true })
  if (created && (await readdir(dataDir)).length === 0) await rmdir(dataDir)
}
