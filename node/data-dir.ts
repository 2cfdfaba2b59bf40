/**
 * The data dir holds plaintext chunks, the node's private key and the API address: it is
 * private to the node's user whatever mode it had before (a dir made 0755 by hand, or by an
 * older version). Directories end 0700, files lose every group and other bit.
 *
 * Three layers, because level (LevelDB, in C++) creates its own files with 0666 & ~umask:
 * - the dir is 0700, so nobody else can even look inside: this alone protects level's files;
 * - files this project writes are created 0600 and dirs 0700 explicitly;
 * - `replicant init` and `start` set the process umask to 077 (`privateUmask`), so level's
 *   files are 0600 too. Only there: the umask is process-wide, so a library call
 *   (ReplicantNode.start in someone else's process) must not change it, and worker threads
 *   cannot (ava runs tests in them). An in-process node's level files are therefore as the
 *   embedding process's umask makes them, inside a 0700 dir; the walk at start fixes them.
 * The walk covers what the node writes (NODE_ENTRIES), not whatever else an operator keeps in
 * the dir: those are protected by the dir's 0700 and keep their modes.
 */
import { chmod, lstat, mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { isMainThread } from 'node:worker_threads'

export const PRIVATE_DIR_MODE = 0o700
export const PRIVATE_FILE_MODE = 0o600
/** What a node writes at the top of its data dir (its identity, the index, the packs, API files, restore spools). */
export const NODE_ENTRIES = [/^identity\.key$/, /^store$/, /^chunks$/, /^tmp$/, /^api[.-]/]

/** Creates DIR if needed and makes it 0700 (before anything is written in it). */
export async function makeDirPrivate (dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE })
  await chmod(dir, PRIVATE_DIR_MODE)
}

/** The data dir 0700, and the node's entries in it walked with makeTreePrivate. */
export async function makeDataDirPrivate (dataDir: string): Promise<number> {
  await makeDirPrivate(dataDir)
  let changed = 0
  for (const name of await readdir(dataDir)) {
    if (NODE_ENTRIES.some(re => re.test(name))) changed += await makeTreePrivate(join(dataDir, name))
  }
  return changed
}

/**
 * Walks DIR: directories 0700, files without group/other bits (owner bits kept). Symlinks
 * are left alone (never followed: a link could point outside the data dir). Returns how many
 * entries were changed.
 */
export async function makeTreePrivate (dir: string): Promise<number> {
  try {
    let changed = 0
    const st = await lstat(dir)
    if (st.isDirectory()) {
      if ((st.mode & 0o777) !== PRIVATE_DIR_MODE) { await chmod(dir, PRIVATE_DIR_MODE); changed++ }
      for (const name of await readdir(dir)) changed += await makeTreePrivate(join(dir, name))
    } else if (st.isFile() && (st.mode & 0o077) !== 0) {
      await chmod(dir, st.mode & 0o700)
      changed++
    }
    return changed
  } catch (err) {
    // Level compacts in the background: a file listed a moment ago may be gone.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw err
  }
}

/** umask 077 for a process that is a node (the CLI's init and start); a no-op in a worker. */
export function privateUmask (): void {
  if (isMainThread) process.umask(0o077)
}
