/**
 * The node a fuzz run attacks: a real ReplicantNode on 127.0.0.1 (noise, a store in a temp
 * dir) holding a volume with some files, a second real node as its member, and a stranger
 * libp2p peer that is in no volume. It checks that the member can still read a file through
 * the index and chunk protocols, and at the end that the store reopens and every file verifies.
 */
import type { LimitOptions } from '../replication/peer-limits.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import type { Libp2p, PeerId, StreamHandler } from '@libp2p/interface'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { ReplicantNode } from '../node/replicant-node.js'
import { createReplicantLibp2p } from '../node/libp2p.js'
import { Store } from '../store/store.js'
import { fetchIndexPage } from '../protocols/index-protocol.js'
import { wantChunks } from '../protocols/chunk-protocol.js'
import { sha256, joined } from '../core/hash.js'
import { HASH_BYTES } from '../core/records.js'
import type { FuzzContext } from './fuzz-messages.js'
import type { Identity } from './fuzz-mutate.js'

const VOLUME = 'fuzzed'
/** The file the health check reads (never named by the HTTP fuzz's writes). */
export const HEALTH_FILE = '/health/file'

export interface FuzzTarget {
  node: ReplicantNode
  member: ReplicantNode
  stranger: Libp2p
  ctx: FuzzContext
  /** The libp2p peer of an identity, and the target's peer id as it sees it. */
  peerOf: (identity: Identity) => Libp2p
  targetId: PeerId
  /** The handler the target registered for `protocol` (its real code, for in-memory streams). */
  handlerOf: (protocol: string) => StreamHandler
  /** The member reads HEALTH_FILE from the target over the index and chunk protocols; throws if it cannot. */
  checkServes: (signal?: AbortSignal) => Promise<void>
  /** Stops every node, reopens the target's store and verifies every file of the volume; throws on corruption. */
  stopAndVerify: () => Promise<{ files: number, bytes: number }>
  /** Stops everything and removes the temp dirs (safe after stopAndVerify, idempotent). */
  close: () => Promise<void>
}

interface Registrar { getHandler: (protocol: string) => { handler: StreamHandler } }

/** Some files of assorted sizes (a few chunks each at 64 KiB), with known contents. */
function contents (): Map<string, Buffer> {
  const files = new Map<string, Buffer>()
  files.set(HEALTH_FILE, Buffer.alloc(3 * 65536 + 123, 'health'))
  for (let i = 0; i < 6; i++) files.set(`/data/f${i}`, createHash('sha512').update(`f${i}`).digest().subarray(0, 10 + i * 20_000))
  return files
}

async function * once (b: Uint8Array): AsyncGenerator<Uint8Array> { yield await Promise.resolve(b) }

/** A bucket no fuzzer reaches. */
const WIDE_OPEN = { rate: 1_000_000, burst: 1_000_000 }

export async function startFuzzTarget (opts: { api?: boolean, limits?: Partial<LimitOptions> } = {}): Promise<FuzzTarget> {
  const dir = await mkdtemp(join(tmpdir(), 'replicant-fuzz-'))
  const cleanups: Array<() => Promise<void>> = [async () => { await rm(dir, { recursive: true, force: true, maxRetries: 3 }) }]
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    for (const c of cleanups.reverse()) await c().catch(() => {})
  }
  try {
    // Production settings (no testing switches: no fault routes), an API for the HTTP fuzz. The
    // per-peer limits are opened wide: at the default rates the fuzzer's own flood is refused at
    // the gate and banned within seconds, and the handlers behind it would go unexercised (the
    // limits have their own tests: test/peer-limits.test.ts). `opts.limits` puts them back.
    const limits = opts.limits ?? { stranger: WIDE_OPEN, member: WIDE_OPEN, strikesToBan: Number.MAX_SAFE_INTEGER }
    const node = await ReplicantNode.start({ dataDir: join(dir, 'target'), listen: ['/ip4/127.0.0.1/tcp/0'], api: opts.api === true ? '127.0.0.1:0' : false, limits })
    cleanups.push(async () => { await node.stop() })
    const member = await ReplicantNode.start({ dataDir: join(dir, 'member'), listen: ['/ip4/127.0.0.1/tcp/0'], api: false, join: [node.multiaddrs()[0]] })
    cleanups.push(async () => { await member.stop() })
    const stranger = await createReplicantLibp2p({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    cleanups.push(async () => { await stranger.stop() })
    await stranger.dial(multiaddr(node.multiaddrs()[0]))
    const vol = await node.createVolume({ name: VOLUME, replicas: [member.peerId] })
    const files = contents()
    const hashes: Uint8Array[] = []
    for (const [path, data] of files) {
      const rec = await node.volumes.putFile(VOLUME, path, once(data))
      for (let o = 0; o < rec.chunks.byteLength; o += HASH_BYTES) hashes.push(rec.chunks.subarray(o, o + HASH_BYTES))
    }
    const ctx: FuzzContext = { volume: VOLUME, volumeId: vol.id, generation: vol.generation, members: [...vol.members], chunkSize: vol.chunkSize, hashes, paths: [...files.keys()] }
    const targetId = peerIdFromString(node.peerId)
    const registrar = (node.libp2p as unknown as { components: { registrar: Registrar } }).components.registrar
    const checkServes = async (signal?: AbortSignal): Promise<void> => {
      const sig = signal ?? AbortSignal.timeout(20_000)
      const page = await fetchIndexPage(member.libp2p, targetId, { volume: VOLUME, volumeId: vol.id, since: 0 }, sig)
      const rec = page.records.find(r => r.path === HEALTH_FILE && !r.deleted)
      if (rec === undefined) throw new Error(`${HEALTH_FILE} is missing from the index the target serves`)
      const want: Uint8Array[] = []
      for (let o = 0; o < rec.chunks.byteLength; o += HASH_BYTES) want.push(rec.chunks.subarray(o, o + HASH_BYTES))
      const parts = new Map<string, Uint8Array>()
      for await (const item of wantChunks(member.libp2p, targetId, { volume: VOLUME, volumeId: vol.id, hashes: want }, vol.chunkSize, sig)) {
        if (item.bytes === undefined) throw new Error('the target no longer holds a chunk of the health file')
        parts.set(Buffer.from(item.hash).toString('hex'), joined(item.bytes))
      }
      const got = Buffer.concat(want.map(h => parts.get(Buffer.from(h).toString('hex')) ?? new Uint8Array(0)))
      if (!got.equals(files.get(HEALTH_FILE)!)) throw new Error('the health file read back differs')
    }
    const stopAndVerify = async (): Promise<{ files: number, bytes: number }> => {
      await node.stop()
      await member.stop()
      await stranger.stop()
      const store = await Store.open(join(dir, 'target'))
      try {
        let n = 0
        let total = 0
        for await (const rec of store.listFiles(VOLUME)) {
          const list: Uint8Array[] = []
          for (let o = 0; o < rec.chunks.byteLength; o += HASH_BYTES) list.push(rec.chunks.subarray(o, o + HASH_BYTES))
          const chunks = await store.chunks.getMany(list)
          chunks.forEach((c, i) => {
            if (c === undefined) throw new Error(`${rec.path}: chunk ${i} is missing`)
            if (Buffer.compare(sha256(c), list[i]) !== 0) throw new Error(`${rec.path}: chunk ${i} does not match its hash`)
          })
          const data = Buffer.concat(chunks as Uint8Array[])
          if (data.byteLength !== rec.size) throw new Error(`${rec.path}: ${data.byteLength} bytes, record says ${rec.size}`)
          const expected = files.get(rec.path)
          if (expected !== undefined && !expected.equals(data)) throw new Error(`${rec.path}: contents changed`)
          n++
          total += data.byteLength
        }
        for (const path of files.keys()) if (await store.getFile(VOLUME, path) === undefined) throw new Error(`${path} is gone`)
        return { files: n, bytes: total }
      } finally {
        await store.close()
      }
    }
    return {
      node, member, stranger, ctx, targetId, checkServes, stopAndVerify, close,
      peerOf: identity => identity === 'member' ? member.libp2p : stranger,
      handlerOf: protocol => registrar.getHandler(protocol).handler
    }
  } catch (err) {
    await close()
    throw err
  }
}
