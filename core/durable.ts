import { open, rename } from 'node:fs/promises'
import { dirname } from 'node:path'

/** fsyncs a directory: a rename, create or unlink in it survives a power loss only after this. */
export async function syncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try { await fh.sync() } finally { await fh.close() }
}

/** fsyncs a file's bytes (a file about to be renamed into place must be whole on disk first). */
export async function syncFile (path: string): Promise<void> {
  const fh = await open(path, 'r+')
  try { await fh.sync() } finally { await fh.close() }
}

/**
 * Puts a finished temp file in place: its bytes synced, renamed, then the directory synced,
 * so that after a power loss the name shows either the old file or the whole new one.
 */
export async function renameDurably (tmp: string, dest: string): Promise<void> {
  await syncFile(tmp)
  await rename(tmp, dest)
  await syncDir(dirname(dest))
}
