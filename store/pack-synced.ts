/**
 * Testing only: the length of each pack file when its last datasync began, appended to
 * DATA/chunks/synced-lengths after the datasync returned. That is what a power loss keeps of a
 * pack; a harness that SIGKILLs a node cuts its packs to these lengths before restarting it
 * (testing/power-loss.ts). The record itself is not fsynced: a SIGKILL keeps the page cache, and
 * only the harness reads it, between the kill and the restart.
 */
import { appendFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { packName } from './pack-locations.js'

export const SYNCED_LENGTHS = 'synced-lengths'

export class SyncedLengths {
  constructor (private readonly dir: string) {}

  /** Records `[pack id, length]` pairs whose datasync has returned. */
  async record (lengths: Array<[number, number]>): Promise<void> {
    if (lengths.length === 0) return
    await appendFile(join(this.dir, SYNCED_LENGTHS), lengths.map(([id, len]) => `${packName(id)} ${len}\n`).join(''), { mode: 0o600 })
  }
}

/** The last recorded fsynced length of each pack file of `dir` (packs never synced are absent: 0). */
export async function readSyncedLengths (dir: string): Promise<Map<string, number>> {
  const text = await readFile(join(dir, SYNCED_LENGTHS), 'utf8').catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return ''; throw err })
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    const [name, len] = line.split(' ')
    // A torn last line (the node died while appending) is ignored: the earlier one holds.
    if (name !== undefined && len !== undefined && /^\d+$/.test(len)) out.set(name, Number(len))
  }
  return out
}
