import { readFile, writeFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { ReplicantError, Codes } from '../core/errors.js'
import { renameDurably } from '../core/durable.js'

/**
 * What a running node leaves in its data dir for the CLI: the address of its HTTP API. Kept
 * apart from replicant-node.ts so that client commands load no libp2p (start-up time).
 */
export const API_FILE = 'api.json'
export const VERSION = '0.1.0'

/** `tlsCert`: the API is https, served with this certificate (absolute path), which the CLI trusts. */
export interface ApiInfo { url: string, pid: number, peerId: string, tlsCert?: string }

/** Reads the API address a running node wrote into its data dir. */
export async function readApiInfo (dataDir: string): Promise<ApiInfo> {
  try {
    return JSON.parse(await readFile(join(dataDir, API_FILE), 'utf8')) as ApiInfo
  } catch {
    throw new ReplicantError(Codes.NODE_NOT_RUNNING, `no running node found for data dir ${dataDir} (start one with 'replicant start --data ${dataDir}')`)
  }
}

/** Written whole or not at all (a temp file renamed over it): a CLI never reads half of it. */
export async function writeApiInfo (dataDir: string, info: ApiInfo): Promise<void> {
  const tmp = join(dataDir, `${API_FILE}.${process.pid}.tmp`)
  await writeFile(tmp, JSON.stringify(info) + '\n', { mode: 0o600 })
  await renameDurably(tmp, join(dataDir, API_FILE))
}

export async function removeApiInfo (dataDir: string): Promise<void> {
  await rm(join(dataDir, API_FILE), { force: true })
}
