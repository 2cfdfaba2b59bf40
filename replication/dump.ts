import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import * as lp from 'it-length-prefixed'
import { ReplicantError, InvalidInputError, Codes } from '../core/errors.js'
import { encode, decode, asFileRecord } from '../core/codec.js'
import { hashHex, sha256 } from '../store/chunk-store.js'
import { chunkHashes, genIdOf, RECORD_VERSION, type FileRecord, type VolumeRecord, type GenerationEntry } from '../core/records.js'
import { normalizePath, validateVolumeName } from '../core/paths.js'
import { applyIncoming } from './all-mode-writes.js'
import { crashPoint } from '../core/crash-points.js'
import { strip } from './reconcile.js'
import { initialState } from './member-state.js'
import type { Store, NewFileRecord, SnapshotRecord } from '../store/store.js'
import { MAX_CHUNK_LIST_BYTES } from '../protocols/constants.js'
import { varint } from '../protocols/framing.js'

/**
 * Dump files: a portable archive of a snapshot of a volume, full or incremental since another
 * snapshot. Layout: the 8-byte magic, then length-prefixed CBOR frames: one `header`, then
 * `chunk` frames (every chunk the files need, each once) and `file` / `delete` frames, then an
 * `end` frame holding the counts and the sha256 of every byte before it. Restore reads the
 * whole file once to check that trailer before it touches the store, then applies it.
 */
export const DUMP_MAGIC = Buffer.from('RPLDUMP\n')
export const DUMP_VERSION = 1
/**
 * Largest frame a dump may hold: a chunk of at most 1 MiB plus its header, or a file record,
 * whose chunk list may be up to MAX_CHUNK_LIST_BYTES (the ceiling every write enforces).
 */
const MAX_DUMP_FRAME = MAX_CHUNK_LIST_BYTES + 1024 * 1024

export interface DumpHeader {
  v: number
  t: 'header'
  volume: {
    name: string
    id: string
    generation: number
    genId: string
    history: GenerationEntry[]
    members: string[]
    writeMode: VolumeRecord['writeMode']
    chunkSize: number
    createdAt: number
  }
  snapshot: { name: string, seq: number }
  base: { name: string, seq: number } | null
  /** The peer whose change log the snapshot's seq counts in. */
  source: string
  createdAt: number
}

export interface DumpStats { files: number, deletes: number, chunks: number, bytes: number }

function frame (msg: unknown): Uint8Array {
  return lp.encode.single(encode(msg)).subarray()
}

/** Chunks read from the store per getMany while dumping (adjacent ones come in one read). */
const DUMP_READ_CHUNKS = 64

/**
 * The dump of `snap` (incremental from `base` when given) as a byte stream: constant memory
 * apart from the set of chunk hashes already written (32 bytes a chunk).
 */
export async function * writeDump (store: Store, vol: VolumeRecord, snap: SnapshotRecord, base: SnapshotRecord | undefined, source: string, stats: DumpStats = { files: 0, deletes: 0, chunks: 0, bytes: 0 }): AsyncGenerator<Uint8Array> {
  if (base !== undefined && base.seq > snap.seq) throw new InvalidInputError(Codes.BAD_REQUEST, `base snapshot '${base.name}' is newer than '${snap.name}'`)
  const hash = createHash('sha256')
  const out = (b: Uint8Array): Uint8Array => { hash.update(b); stats.bytes += b.byteLength; return b }
  const header: DumpHeader = {
    v: DUMP_VERSION,
    t: 'header',
    volume: { name: vol.name, id: vol.id, generation: vol.generation, genId: genIdOf(vol), history: vol.history ?? [], members: vol.members, writeMode: vol.writeMode, chunkSize: vol.chunkSize, createdAt: vol.createdAt },
    snapshot: { name: snap.name, seq: snap.seq },
    base: base === undefined ? null : { name: base.name, seq: base.seq },
    source,
    createdAt: Date.now()
  }
  // The snapshots read stay until the dump ends (or its reader goes away): GC keeps their chunks.
  const unpin = [await store.pinSnapshot(vol.name, snap.name)]
  try {
    if (base !== undefined) unpin.push(await store.pinSnapshot(vol.name, base.name))
    yield * dumpBody(store, vol, snap, base, header, out, stats)
  } finally {
    for (const release of unpin) release()
  }
  yield lp.encode.single(encode({ t: 'end', files: stats.files, deletes: stats.deletes, chunks: stats.chunks, sha256: hash.digest() })).subarray()
}

async function * dumpBody (store: Store, vol: VolumeRecord, snap: SnapshotRecord, base: SnapshotRecord | undefined, header: DumpHeader, out: (b: Uint8Array) => Uint8Array, stats: DumpStats): AsyncGenerator<Uint8Array> {
  yield out(DUMP_MAGIC)
  yield out(frame(header))
  const written = new Set<string>()
  for await (const cur of store.listFiles(vol.name)) {
    const rec = cur.seq <= snap.seq ? (cur.deleted ? undefined : cur) : await store.getFileAt(vol.name, cur.path, snap.seq)
    const old = base === undefined ? undefined : await store.getFileAt(vol.name, cur.path, base.seq)
    if (rec === undefined) {
      if (old !== undefined) {
        stats.deletes++
        yield out(frame({ t: 'delete', path: cur.path, vv: cur.vv }))
      }
      continue
    }
    if (old !== undefined && old.seq === rec.seq) continue // unchanged since the base
    const baseChunks = new Set(old === undefined ? [] : [...chunkHashes(old)].map(hashHex))
    // The file's chunks go out before its record, read DUMP_READ_CHUNKS at a time and written
    // as one buffer per group (one read and one socket write per ~4 MiB, not per chunk).
    let group: Uint8Array[] = []
    const emit = async (): Promise<Uint8Array> => {
      const bytes = await store.chunks.getMany(group)
      const parts = group.map((h, i) => {
        const d = bytes[i]
        if (d === undefined) throw new ReplicantError(Codes.CHUNK_MISSING, `chunk ${hashHex(h)} of ${rec.path} is not held by this node: it cannot dump it`)
        return frame({ t: 'chunk', h, d })
      })
      stats.chunks += group.length
      group = []
      return out(Buffer.concat(parts))
    }
    for (const h of chunkHashes(rec)) {
      const hex = hashHex(h)
      if (written.has(hex) || baseChunks.has(hex)) continue
      written.add(hex)
      group.push(h)
      if (group.length >= DUMP_READ_CHUNKS) yield await emit()
    }
    if (group.length > 0) yield await emit()
    stats.files++
    yield out(frame({ t: 'file', rec: strip(rec) }))
  }
}

async function * frames (stream: AsyncIterable<Uint8Array>): AsyncGenerator<{ msg: Record<string, unknown>, raw: Uint8Array }> {
  let first = true
  let magic = Buffer.alloc(0)
  async function * body (): AsyncGenerator<Uint8Array> {
    for await (const piece of stream) {
      let b = piece as Buffer
      if (first) {
        magic = Buffer.concat([magic, b])
        if (magic.byteLength < DUMP_MAGIC.byteLength) continue
        if (!magic.subarray(0, DUMP_MAGIC.byteLength).equals(DUMP_MAGIC)) throw new ReplicantError(Codes.BAD_DUMP, 'not a Replicant dump file (bad magic)')
        b = magic.subarray(DUMP_MAGIC.byteLength)
        first = false
      }
      yield b
    }
    if (first) throw new ReplicantError(Codes.BAD_DUMP, 'dump file is truncated (no header)')
  }
  try {
    for await (const f of lp.decode(body(), { maxDataLength: MAX_DUMP_FRAME })) {
      const raw = f.subarray()
      let msg: unknown
      try { msg = decode(raw) } catch { throw new ReplicantError(Codes.BAD_DUMP, 'dump file is corrupted (a frame is not valid CBOR)') }
      if (msg === null || typeof msg !== 'object') throw new ReplicantError(Codes.BAD_DUMP, 'dump file is corrupted (a frame is not a map)')
      yield { msg: msg as Record<string, unknown>, raw }
    }
  } catch (err) {
    if (err instanceof ReplicantError) throw err
    throw new ReplicantError(Codes.BAD_DUMP, `dump file is corrupted or truncated: ${(err as Error).message}`)
  }
}

/**
 * Reads a whole dump once (a file, or any byte stream: the HTTP upload is checked while it is
 * spooled) and checks its framing, every chunk's hash, the trailer checksum and the counts.
 */
export async function verifyDump (source: string | AsyncIterable<Uint8Array>): Promise<{ header: DumpHeader, stats: DumpStats }> {
  const hash = createHash('sha256').update(DUMP_MAGIC)
  let header: DumpHeader | undefined
  const stats: DumpStats = { files: 0, deletes: 0, chunks: 0, bytes: 0 }
  let ended = false
  for await (const { msg, raw } of frames(typeof source === 'string' ? createReadStream(source) : source)) {
    if (ended) throw new ReplicantError(Codes.BAD_DUMP, 'dump file has data after its end')
    if (msg.t === 'end') {
      const sum = msg.sha256
      if (!(sum instanceof Uint8Array) || Buffer.compare(sum, hash.digest()) !== 0) throw new ReplicantError(Codes.BAD_DUMP, 'dump file checksum does not match: it is corrupted')
      if (msg.files !== stats.files || msg.chunks !== stats.chunks || msg.deletes !== stats.deletes) throw new ReplicantError(Codes.BAD_DUMP, 'dump file counts do not match its content')
      ended = true
      continue
    }
    hash.update(varint(raw.byteLength))
    hash.update(raw)
    if (header === undefined) {
      if (msg.t !== 'header' || msg.v !== DUMP_VERSION) throw new ReplicantError(Codes.BAD_DUMP, `unsupported dump (version ${String(msg.v)})`)
      header = msg as unknown as DumpHeader
      validateVolumeName(header.volume?.name)
      continue
    }
    if (msg.t === 'chunk') {
      if (!(msg.h instanceof Uint8Array) || !(msg.d instanceof Uint8Array) || Buffer.compare(sha256(msg.d), msg.h) !== 0) {
        throw new ReplicantError(Codes.BAD_DUMP, 'dump file holds a chunk whose bytes do not match its hash')
      }
      stats.chunks++
    } else if (msg.t === 'file') {
      const rec = asFileRecord({ ...(msg.rec as object), seq: 0 })
      if (normalizePath(rec.path) !== rec.path) throw new ReplicantError(Codes.BAD_DUMP, 'dump file holds a bad path')
      stats.files++
    } else if (msg.t === 'delete') {
      stats.deletes++
    } else {
      throw new ReplicantError(Codes.BAD_DUMP, `dump file holds an unknown frame '${String(msg.t)}'`)
    }
  }
  if (header === undefined || !ended) throw new ReplicantError(Codes.BAD_DUMP, 'dump file is truncated (no end frame)')
  return { header, stats }
}

export interface RestoreResult { volume: string, volumeId: string, snapshot: string, seq: number, incremental: boolean, files: number, deletes: number, chunks: number }

/**
 * Restores a verified dump: a full dump creates the volume (same id, generation and history;
 * this node keeps the source's seq as its watermark, so joining later is a minicopy); an
 * incremental one applies on top of the snapshot it was taken from, and only there.
 */
export async function restoreDump (store: Store, path: string, verified?: DumpHeader): Promise<RestoreResult> {
  // `verified`: the caller checked this very file already (verifyDump), so it is read once more, not twice.
  const header = verified ?? (await verifyDump(path)).header
  const hv = header.volume
  const existing = await store.getVolume(hv.name)
  const marker = `restored:${hv.name}`
  // Set while a full restore runs: a volume left by one that was killed is only a prefix of it, restored again from scratch.
  const running = `restoring:${hv.name}`
  if (header.base === null) {
    if (existing !== undefined) {
      const interrupted = await store.getMeta<{ id: string }>(running)
      if (interrupted?.id !== existing.id) throw new ReplicantError(Codes.VOLUME_EXISTS, `volume '${hv.name}' already exists here: a full dump restores only onto a node without it`)
      await store.deleteVolume(hv.name)
    }
    await store.putMeta(running, { id: hv.id })
    await store.createVolume({
      v: RECORD_VERSION, name: hv.name, id: hv.id, generation: hv.generation, genId: hv.genId, history: hv.history,
      members: [...hv.members].sort(), writeMode: hv.writeMode, chunkSize: hv.chunkSize, createdAt: hv.createdAt, seq: 0, dirty: false, state: initialState('restored')
    })
  } else {
    if (existing === undefined || existing.id !== hv.id) throw new ReplicantError(Codes.BASE_MISMATCH, `incremental dump of '${hv.name}' needs that volume (id ${hv.id}) restored here first`)
    const last = await store.getMeta<{ id: string, snapshot: string, seq: number }>(marker)
    if (last === undefined || last.id !== hv.id || last.seq !== header.base.seq || last.snapshot !== header.base.name) {
      throw new ReplicantError(Codes.BASE_MISMATCH, `incremental dump is based on snapshot '${header.base.name}' (seq ${header.base.seq}); this node holds ${last === undefined ? 'no restored snapshot' : `'${last.snapshot}' (seq ${last.seq})`} of '${hv.name}'`)
    }
  }
  let files: NewFileRecord[] = []
  let chunks: Array<{ hash: Uint8Array, bytes: Uint8Array }> = []
  const result: RestoreResult = { volume: hv.name, volumeId: hv.id, snapshot: header.snapshot.name, seq: header.snapshot.seq, incremental: header.base !== null, files: 0, deletes: 0, chunks: 0 }
  const flush = async (): Promise<void> => {
    await store.chunks.putMany(chunks)
    chunks = []
    const batch = files
    files = []
    if (batch.length === 0) return
    await store.commitFiles(hv.name, async (ctx) => {
      const out: NewFileRecord[] = []
      for (const r of batch) out.push(...await applyIncoming(ctx, r))
      return out
    }, 'restore')
    crashPoint('restore-batch')
  }
  for await (const { msg } of frames(createReadStream(path))) {
    if (msg.t === 'chunk') {
      chunks.push({ hash: msg.h as Uint8Array, bytes: msg.d as Uint8Array })
      result.chunks++
      if (chunks.length >= 64) await flush()
    } else if (msg.t === 'file') {
      const rec = strip(asFileRecord({ ...(msg.rec as object), seq: 0 }))
      files.push(rec)
      result.files++
      if (files.length >= 256) await flush()
    } else if (msg.t === 'delete') {
      await flush()
      const p = String(msg.path)
      await store.commitFiles(hv.name, async ({ get }) => {
        const cur = await get(p)
        if (cur === undefined || cur.deleted) return []
        return [{ ...cur, size: 0, chunks: new Uint8Array(0), deleted: true, vv: msg.vv as FileRecord['vv'], mtime: Date.now() }]
      }, 'restore')
      result.deletes++
    }
  }
  await flush()
  // The source's change log is applied up to the snapshot's seq: a later join is a minicopy.
  await store.commitFiles(hv.name, (ctx) => { ctx.setWatermark(header.source, header.snapshot.seq); return Promise.resolve([]) })
  await store.putMeta(marker, { id: hv.id, snapshot: header.snapshot.name, seq: header.snapshot.seq })
  if (header.base === null) await store.deleteMeta(running)
  return result
}

export function tempName (): string {
  return `restore-${randomBytes(6).toString('hex')}.dump`
}

/**
 * Writes each piece of `source` to `fh` before passing it on: spool and verify in one pass.
 * A consumer that stops early (a bad dump) does not end the source: `drain()` reads the rest,
 * so an HTTP client still uploading gets the error reply rather than a reset connection.
 */
export function spooled (source: AsyncIterable<Uint8Array>, fh: FileHandle): { pieces: AsyncGenerator<Uint8Array>, drain: () => Promise<void> } {
  const it = source[Symbol.asyncIterator]()
  async function * pieces (): AsyncGenerator<Uint8Array> {
    while (true) {
      const next = await it.next()
      if (next.done === true) return
      // write() may write less than asked (disk full): the spool must hold every verified byte.
      for (let off = 0; off < next.value.byteLength;) off += (await fh.write(next.value, off, next.value.byteLength - off)).bytesWritten
      yield next.value
    }
  }
  const drain = async (): Promise<void> => { while ((await it.next()).done !== true) { /* discarded */ } }
  return { pieces: pieces(), drain }
}
