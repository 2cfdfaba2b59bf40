/**
 * Folders over the flat index. A path is a file when it holds a live record that is not a
 * folder marker; a folder when it holds a marker (core/records.ts FOLDER_MODE) or when any live
 * record lies under it. The volume itself (`/`) is always a folder.
 */
import type { FileRecord } from '../../core/records.js'
import { isFolderMarker } from '../../core/records.js'
import { Codes, isReplicantError } from '../../core/errors.js'
import type { VolumeService } from '../../replication/volume-service.js'

export type DavVolumes = Pick<VolumeService, 'volume' | 'stat' | 'readFile' | 'putFile' | 'listFiles' | 'writeTree'>

export type Entry =
  | { kind: 'file', path: string, rec: FileRecord }
  | { kind: 'folder', path: string, rec?: FileRecord }

export class DavTree {
  constructor (readonly volumes: DavVolumes) {}

  /** The live record at `path` (file or marker), if any. */
  async record (volume: string, path: string): Promise<FileRecord | undefined> {
    try {
      return await this.volumes.stat(volume, path)
    } catch (err) {
      if (isReplicantError(err) && err.code === Codes.FILE_NOT_FOUND) return undefined
      throw err
    }
  }

  /**
   * What `path` is. A live file record there makes it a file even when records lie below it
   * (a file and a folder made at one path on two members apart, or through the JSON API): those
   * stay in the index, reachable by their own paths, not listed under the file.
   */
  async resolve (volume: string, path: string): Promise<Entry | undefined> {
    if (path === '/') { await this.volumes.volume(volume); return { kind: 'folder', path } }
    const rec = await this.record(volume, path)
    if (rec !== undefined) return isFolderMarker(rec) ? { kind: 'folder', path, rec } : { kind: 'file', path, rec }
    for await (const _ of this.volumes.listFiles(volume, path + '/')) return { kind: 'folder', path }
    return undefined
  }

  /**
   * The members of a folder, each once, without reading what lies below a child folder: on
   * the first record under a child folder the listing starts again just past that folder's
   * subtree (`child/` sorts right before `child0`, '0' being the character after '/'). The
   * cost is one seek per child folder, not one record per file below it. A folder with a
   * marker was listed at its marker (which sorts before `name/`).
   */
  async * children (volume: string, path: string, signal?: AbortSignal): AsyncGenerator<Entry> {
    const prefix = path === '/' ? '/' : path + '/'
    let from: string | undefined
    while (true) {
      let skipTo: string | undefined
      for await (const rec of this.volumes.listFiles(volume, prefix, signal, from)) {
        const rest = rec.path.slice(prefix.length)
        const slash = rest.indexOf('/')
        if (slash < 0) {
          yield isFolderMarker(rec) ? { kind: 'folder', path: rec.path, rec } : { kind: 'file', path: rec.path, rec }
          continue
        }
        const child = prefix + rest.slice(0, slash)
        skipTo = child + '0'
        // A live record at `child` was listed already, before its subtree: as a folder when it
        // is a marker, as a file otherwise (a file and records below it at one path: see
        // resolve, which calls it a file; listing it twice showed two entries of one name).
        if (await this.record(volume, child) === undefined) yield { kind: 'folder', path: child }
        break // closes this listing; the next starts past the child's subtree
      }
      if (skipTo === undefined) return
      from = skipTo
    }
  }

  /** Every live record under `path` (not the one at it), in path order. */
  descendants (volume: string, path: string, signal?: AbortSignal): AsyncGenerator<FileRecord> {
    return this.volumes.listFiles(volume, path === '/' ? '/' : path + '/', signal)
  }
}
