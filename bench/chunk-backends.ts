/**
 * chunk-backends: where chunk bytes should live.
 *
 * For chunk sizes 16 KiB and 64 KiB, 1 GiB (--full; default 128 MiB, --quick 64 MiB: level's write
 * rate falls as its database grows, so 1 GiB is the figure to quote) of unique data is written the
 * way VolumeService.putFile writes it (node/chunker.ts fixedChunks, sha256 per chunk, then per
 * batch of 64 chunks hasMany + putMany of the missing ones), then ChunkStore.sync() and one
 * synced level batch (the index commit). Backends:
 * - level:           store/chunk-store.ts LevelChunkStore, chunks as values in a sublevel of
 *                    the index db, as the product does now; the synced commit batch makes the
 *                    earlier unsynced chunk batches durable (same write-ahead log);
 * - level-tuned:     the same with writeBufferSize 64 MiB, maxFileSize 64 MiB, no compression
 *                    (is level slow by nature, or by default options?);
 * - files-sync-end:  one file per chunk, written unsynced; sync() fsyncs each file, then dirs;
 * - files-sync-each: one file per chunk, each fsynced before putMany returns;
 * - packs:           64 MiB append-only pack files, index in a level sublevel; pack fsynced
 *                    before the index batch (the prototype in bench/backends.ts);
 * - store-packs:     store/pack-chunk-store.ts PackChunkStore, the product's pack store (it
 *                    landed while this benchmark was written): one write of the concatenated
 *                    batch, location batch written unsynced right after it, sync() = datasync.
 * Baseline in the same run: the same stream (generation, chunking, sha256 all included, as for
 * the backends) written to one plain file, fsync at the end; reads as positional reads of
 * chunk-sized ranges of that file.
 * Timed: write = the whole loop including data generation and sha256 (identical for all),
 * to the synced commit; reads = get() of every chunk, 4 in flight (the product's read-ahead),
 * in write order and in a seeded random order, page cache warm (nothing is dropped), length
 * checked for every chunk and sha256 checked for every 64th. Disk space = allocated blocks
 * after close. Each phase also records CPU seconds per GB of this process (all threads, so
 * level's compaction threads and libuv's pool count), steadier than MB/s under outside load;
 * each repetition starts with a different backend.
 */
import { open, rm, mkdir, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { Level } from 'level'
import { LevelChunkStore } from '../store/chunk-store.js'
import { PackChunkStore as StorePackChunkStore } from '../store/pack-chunk-store.js'
import { fixedChunks } from '../core/chunker.js'
import { countedStream } from './data.js'
import { FileChunkStore, PackChunkStore, type BenchChunkStore } from './backends.js'
import { KiB, MiB, GiB, Samples, asyncSource, diskUsage, fmt, fmtBytes, mbps, ratio, selfCpuSeconds, shuffled, timed, type Suite, type SuiteContext } from './lib.js'
import { loadavg } from 'node:os'

const CHUNK_SIZES = [16 * KiB, 64 * KiB]
const BATCH = 64
const READ_AHEAD = 4
const BACKENDS = ['level', 'level-tuned', 'files-sync-end', 'files-sync-each', 'packs', 'store-packs'] as const
type BackendName = typeof BACKENDS[number]
/** Run by default (all with --full); the others on request with --backends. */
const DEFAULT_BACKENDS: BackendName[] = ['level', 'files-sync-end', 'packs', 'store-packs']
const LEVEL_TUNED = { writeBufferSize: 64 * MiB, maxFileSize: 64 * MiB, compression: false }

interface Opened {
  chunks: BenchChunkStore
  /** The index commit: one synced batch in the metadata db, after chunks.sync(). */
  commit: () => Promise<void>
  close: () => Promise<void>
}

async function openBackend (name: BackendName, dir: string): Promise<Opened> {
  const db = new Level<string, Uint8Array>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'view', ...(name === 'level-tuned' ? LEVEL_TUNED : {}) })
  await db.open()
  let chunks: BenchChunkStore
  if (name === 'level' || name === 'level-tuned') {
    chunks = new LevelChunkStore(db.sublevel<Uint8Array, Uint8Array>('chunks', { keyEncoding: 'buffer', valueEncoding: 'view' }))
  } else if (name === 'store-packs') {
    chunks = await StorePackChunkStore.open(join(dir, 'chunks'), db.sublevel<Uint8Array, Uint8Array>('chunkloc', { keyEncoding: 'buffer', valueEncoding: 'view' }))
  } else if (name === 'packs') {
    chunks = await PackChunkStore.open(join(dir, 'packs'), db, db.sublevel<Uint8Array, Uint8Array>('packidx', { keyEncoding: 'buffer', valueEncoding: 'view' }))
  } else {
    chunks = await FileChunkStore.open(join(dir, 'chunks'), name === 'files-sync-each')
  }
  return {
    chunks,
    commit: async () => {
      await chunks.sync()
      await db.batch([{ type: 'put', key: 'commit', value: Buffer.from(String(Date.now())) }], { sync: true })
    },
    close: async () => {
      await chunks.close?.()
      await db.close()
    }
  }
}

/** Writes `total` bytes of stream `id` through the product's put path; returns the chunk hashes in order. */
async function writeThrough (opened: Opened, id: number, total: number, chunkSize: number): Promise<Uint8Array[]> {
  const hashes: Uint8Array[] = []
  let batch: Array<{ hash: Uint8Array, bytes: Uint8Array }> = []
  const flush = async (): Promise<void> => {
    const have = await opened.chunks.hasMany(batch.map(c => c.hash))
    await opened.chunks.putMany(batch.filter((_, i) => !have[i]))
    batch = []
  }
  for await (const chunk of fixedChunks(asyncSource(countedStream(id, total)), chunkSize)) {
    const hash = createHash('sha256').update(chunk).digest()
    hashes.push(hash)
    batch.push({ hash, bytes: chunk })
    if (batch.length >= BATCH) await flush()
  }
  await flush()
  await opened.commit()
  return hashes
}

/** The baseline: the same stream to one file, written per batch of 64 chunks, fsync at the end. */
async function writeRaw (path: string, id: number, total: number, chunkSize: number): Promise<Uint8Array[]> {
  const hashes: Uint8Array[] = []
  const fh = await open(path, 'w')
  try {
    let batch: Uint8Array[] = []
    for await (const chunk of fixedChunks(asyncSource(countedStream(id, total)), chunkSize)) {
      hashes.push(createHash('sha256').update(chunk).digest())
      batch.push(chunk)
      if (batch.length >= BATCH) { await fh.writev(batch); batch = [] }
    }
    if (batch.length > 0) await fh.writev(batch)
    await fh.sync()
  } finally {
    await fh.close()
  }
  return hashes
}

/** Times `fn`, recording MB/s and CPU seconds per GB under `key`; returns fn's value. */
async function phase<T> (s: Samples, key: string, bytes: number, fn: () => Promise<T>): Promise<T> {
  const cpu0 = selfCpuSeconds()
  const { s: sec, value } = await timed(fn)
  s.add(`${key} MB/s`, mbps(bytes, sec))
  s.add(`${key} cpu`, (selfCpuSeconds() - cpu0) / (bytes / 1e9))
  return value
}

/** Reads items in order with READ_AHEAD in flight, checking each result. */
async function readAll<T> (order: T[], get: (item: T) => Promise<Uint8Array | undefined>, check: (item: T, bytes: Uint8Array | undefined, n: number) => void): Promise<void> {
  const inflight: Array<Promise<Uint8Array | undefined>> = []
  let next = 0
  for (let i = 0; i < order.length; i++) {
    while (next < order.length && inflight.length < READ_AHEAD) {
      const p = get(order[next++])
      p.catch(() => {})
      inflight.push(p)
    }
    check(order[i], await inflight.shift()!, i)
  }
}

function verifier (hashes: Uint8Array[], sizeOf: (i: number) => number): (i: number, bytes: Uint8Array | undefined, n: number) => void {
  return (i, bytes, n) => {
    if (bytes === undefined || bytes.byteLength !== sizeOf(i)) throw new Error(`chunk ${i}: got ${bytes?.byteLength ?? 'nothing'}, expected ${sizeOf(i)} bytes`)
    if (n % 64 === 0 && !createHash('sha256').update(bytes).digest().equals(hashes[i])) throw new Error(`chunk ${i}: sha256 mismatch`)
  }
}

export const chunkBackends: Suite = {
  name: 'chunk-backends',
  description: 'chunk bytes in level vs one file per chunk vs pack files: write, read, random read, disk space',
  async run (ctx: SuiteContext) {
    const total = ctx.pick({ quick: 64 * MiB, standard: 128 * MiB, full: GiB })
    const sel = ctx.flag('backends')
    const backends = typeof sel === 'string' ? sel.split(',') as BackendName[] : ctx.flags.scale === 'full' ? [...BACKENDS] : DEFAULT_BACKENDS
    for (const b of backends) if (!BACKENDS.includes(b)) throw new Error(`unknown backend ${b}; one of ${BACKENDS.join(', ')}`)
    for (const chunkSize of CHUNK_SIZES) {
      const s = new Samples()
      const count = Math.ceil(total / chunkSize)
      const sizeOf = (i: number): number => Math.min(chunkSize, total - i * chunkSize)
      const names = ['raw', ...backends]
      for (let rep = 0; rep < ctx.flags.reps; rep++) {
        const line: string[] = []
        // Each repetition starts with another backend, so a burst of load elsewhere does not
        // always land on the same one.
        for (const name of names.map((_, i) => names[(i + rep) % names.length])) {
          const dir = await ctx.tempDir(`chunks-${name}`)
          const id = 3_000_000 + rep * 10 + CHUNK_SIZES.indexOf(chunkSize)
          const random = shuffled([...Array(count).keys()], 1234 + rep)
          const seq = [...Array(count).keys()]
          if (name === 'raw') {
            const path = join(dir, 'raw.bin')
            const hashes = await phase(s, 'raw write', total, async () => await writeRaw(path, id, total, chunkSize))
            const fh: FileHandle = await open(path, 'r')
            try {
              const get = async (i: number): Promise<Uint8Array> => {
                const buf = Buffer.allocUnsafe(sizeOf(i))
                await fh.read(buf, 0, buf.byteLength, i * chunkSize)
                return buf
              }
              await phase(s, 'raw read', total, async () => { await readAll(seq, get, verifier(hashes, sizeOf)) })
              await phase(s, 'raw random', total, async () => { await readAll(random, get, verifier(hashes, sizeOf)) })
            } finally {
              await fh.close()
            }
          } else {
            await mkdir(dir, { recursive: true })
            const opened = await openBackend(name as BackendName, dir)
            ctx.onCleanup(async () => { await opened.close().catch(() => {}) })
            const hashes = await phase(s, `${name} write`, total, async () => await writeThrough(opened, id, total, chunkSize))
            const get = async (i: number): Promise<Uint8Array | undefined> => await opened.chunks.get(hashes[i])
            await phase(s, `${name} read`, total, async () => { await readAll(seq, get, verifier(hashes, sizeOf)) })
            await phase(s, `${name} random`, total, async () => { await readAll(random, get, verifier(hashes, sizeOf)) })
            await opened.close()
          }
          const du = await diskUsage(dir)
          s.add(`${name} disk`, du.allocated)
          s.add(`${name} files`, du.files)
          await rm(dir, { recursive: true, force: true })
          const last = (k: string): string => fmt(s.all(`${name} ${k} MB/s`)[rep], 0)
          line.push(`${name} w ${last('write')} r ${last('read')} rr ${last('random')}`)
        }
        ctx.log(`  ${fmtBytes(chunkSize)} rep ${rep + 1}/${ctx.flags.reps}: ${line.join('; ')} MB/s (load ${loadavg()[0].toFixed(1)})`)
      }
      const runs = (k: string): string => s.all(k).map(x => fmt(x, 0)).join(' / ')
      const med = (name: string, k: string): number => s.med(`${name} ${k}`)
      ctx.table({
        title: `chunk-backends: ${fmtBytes(total)} of unique data as ${fmtBytes(chunkSize)} chunks (${count} chunks; median of ${ctx.flags.reps})`,
        columns: ['backend', 'write MB/s', 'vs raw', 'write CPU s/GB', 'vs raw', 'read MB/s', 'vs raw', 'random read MB/s', 'vs raw', 'random CPU s/GB', 'disk used', 'overhead per chunk', 'files', 'write runs (MB/s)'],
        rows: names.map(name => [
          name === 'raw' ? 'raw file, fsync at end (baseline)' : name,
          fmt(med(name, 'write MB/s'), 0), ratio(med(name, 'write MB/s'), med('raw', 'write MB/s')),
          fmt(med(name, 'write cpu')), ratio(med(name, 'write cpu'), med('raw', 'write cpu')),
          fmt(med(name, 'read MB/s'), 0), ratio(med(name, 'read MB/s'), med('raw', 'read MB/s')),
          fmt(med(name, 'random MB/s'), 0), ratio(med(name, 'random MB/s'), med('raw', 'random MB/s')),
          fmt(med(name, 'random cpu')),
          `${fmt(med(name, 'disk') / MiB, 1)} MiB`, `${fmt((med(name, 'disk') - total) / count, 0)} B`, med(name, 'files'),
          runs(`${name} write MB/s`)
        ]),
        notes: [
          'Write: data generation, chunking and sha256 (the same for every row, raw included) up to the synced commit. Read: get() of every chunk, 4 in flight, warm page cache.',
          'MB/s = 10^6 B/s, wall clock. CPU s/GB: CPU seconds (user + system, all threads of this process) per 10^9 bytes; it moves far less than MB/s with other load on the machine.',
          `Disk used: allocated blocks after close (level's write-ahead log included); overhead per chunk = (disk used - ${fmtBytes(total)} of data) / chunks.`
        ]
      })
    }
  }
}
