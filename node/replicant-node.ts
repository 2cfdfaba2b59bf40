import '../core/polyfill.js'
import { readdir } from 'node:fs/promises'
import { diskUsage } from './disk-usage.js'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { Store } from '../store/store.js'
import { loadOrCreateIdentity } from './identity.js'
import { addressInUse, removeInitialised } from './start-failures.js'
import { makeDirPrivate, makeDataDirPrivate } from './data-dir.js'
import { readSwarmKeyFile } from '../core/swarm-key.js'
import { createReplicantLibp2p, blockingGater, type ConnectionLimits } from './libp2p.js'
import { HttpApi } from '../api/http-api.js'
import type { AnnouncedVolume, CompactResult, GcResult, MoveResult, StatusResponse, VolumeDropped, VolumeInfo } from '../api/types.js'
import { VolumeService, type CreateVolumeOptions } from '../replication/volume-service.js'
import { PeerManager, type DiscoveryOptions } from '../replication/peer-manager.js'
import { PeerLimits, type LimitOptions } from '../replication/peer-limits.js'
import { neverSeenMembers, DEFAULT_NEVER_SEEN_AFTER_MS } from '../replication/never-seen.js'
import { SyncEngine, type AnnounceResult } from '../replication/sync-engine.js'
import { moveVolume, type MoveOpts } from './volume-move.js'
import type { CopyApproval, ChangeResult } from '../replication/membership.js'
import type { AcceptVolumes } from '../replication/volume-acceptance.js'
import { InvalidInputError, Codes } from '../core/errors.js'
import { logger } from '../core/log.js'
import { validateVolumeName } from '../core/paths.js'
import { DEFAULTS } from '../config/defaults.js'
import type { VolumeRecord } from '../core/records.js'
import { writeApiInfo, removeApiInfo, VERSION } from '../api/api-info.js'
import { apiAddress, prepareApi, type ApiExposureOptions, type PreparedApi } from './api-options.js'
import { LinkFaults } from '../replication/link-faults.js'
import { faultsOf, cutAfterCommit, type NodeFaults } from './node-faults.js'
import { armFromEnv } from '../core/crash-points.js'
import { NodeOps, createMetrics, type ObservabilityOptions, type NodeMetrics } from './node-ops.js'

const log = logger('node')

export { API_FILE, VERSION, readApiInfo, type ApiInfo } from '../api/api-info.js'
export type { NodeFaults } from './node-faults.js'

/** The API options (`api`, `apiToken`, `apiTls`, `apiInsecure`, `apiAllowedHosts`) are in node/api-options.ts. */
export interface NodeOptions extends ApiExposureOptions, ObservabilityOptions, DiscoveryOptions, ConnectionLimits {
  dataDir: string
  listen?: string[]
  /** Multiaddrs (ending in /p2p/<id>) to dial at start; remembered and redialled. */
  join?: string[]
  /** How long a read waits for a chunk fetched on demand (default 10 s). */
  readTimeoutMs?: number
  /** Want-lists in flight for a wannabe's background copy (default 4; 0: no background copy, reads only). */
  copyConcurrency?: number
  /** A member unreachable this long starts a new generation on the others (default 10 min). */
  graceMs?: number
  /** Who may create a volume here (default known: --join peers, members of volumes held here, acceptVolumesFrom, approvals). */
  acceptVolumes?: AcceptVolumes
  /** Peers whose new volumes are accepted in `known` mode (`--accept-volumes-from`). */
  acceptVolumesFrom?: string[]
  /** A member that has not connected within this long is reported never seen and does not hold back compaction (default 10 min). */
  neverSeenAfterMs?: number
  /** Per-peer limits (replication/peer-limits.ts); tests lower them. */
  limits?: Partial<LimitOptions>
  /** Asked before any full copy onto this node; answering false leaves the volume offline here. */
  approveCopy?: CopyApproval
  /** Volumes (or all: true) whose foreign replica here may be deleted and fully recopied. */
  discardLocal?: boolean | string[]
  /** Operator-facing lines (what --discard-local deletes, refusals); the CLI prints them. */
  report?: (line: string) => void
  /** all mode: how long the coordinator waits for every member to prepare (default 30 s). */
  prepareTimeoutMs?: number
  /** all mode: a prepared write undecided this long is resolved with its coordinator (default 60 s). */
  preparedExpiryMs?: number
  /** How long a promise of a membership generation lives before it is in doubt (default 30 s; tests shorten it). */
  promiseMs?: number
  /** Size at which a chunk pack file is rolled (default 64 MiB; tests use small packs). */
  packTargetBytes?: number
  /**
   * Started for testing (`start --testing`): only then are the fault routes (/v1/faults/*),
   * the `faults` option and REPLICANT_FAULTS honoured. Off by default.
   */
  testing?: boolean
  /** A swarm.key file (kubo's format, `replicant swarm-key generate`): a private swarm, only peers with the same key connect. */
  swarmKeyFile?: string
  /** Fault injection (also REPLICANT_FAULTS=crash-after-prepare,crash-after-decision,serve-corrupt-chunks). */
  faults?: NodeFaults
}

/**
 * One Replicant node: identity, store, libp2p peer and HTTP API. Every role runs in this
 * class; the CLI, the tests and the topology API all start nodes through start().
 */
export class ReplicantNode {
  readonly dataDir: string
  readonly store: Store
  readonly libp2p: Libp2p
  readonly volumes: VolumeService
  readonly peers: PeerManager
  readonly sync: SyncEngine
  /** Per-peer request limits and bans (the connection gater reads the bans). */
  readonly limits: PeerLimits
  apiUrl: string | undefined
  /** The token the HTTP API requires (undefined without an API). */
  readonly apiToken: string | undefined
  private readonly api: HttpApi | undefined
  private readonly startedAt = Date.now()
  private readonly neverSeenAfterMs: number
  private stopping: Promise<void> | undefined

  /** Started for testing (`start --testing`): faults and the fault routes are honoured. */
  readonly testing: boolean
  /** Live fault switches (tests and chaos runs flip them); inert unless `testing`. */
  readonly faults: NodeFaults
  /** Metrics, events and conflicts (node/node-ops.ts): the API's OpsSource. */
  readonly ops: NodeOps
  /** Slow or lossy links to chosen peers (fault injection). */
  get links (): LinkFaults { return this.faults.links! }
  private constructor (dataDir: string, store: Store, libp2p: Libp2p, blocked: Set<string>, limits: PeerLimits, opts: NodeOptions, api: PreparedApi | undefined, readonly swarmKeyFingerprint: string | undefined, metrics: NodeMetrics) {
    const ops = this.ops = new NodeOps(metrics, () => this)
    this.testing = opts.testing === true
    this.neverSeenAfterMs = opts.neverSeenAfterMs ?? DEFAULT_NEVER_SEEN_AFTER_MS
    // Faults exist only on a node started for testing; elsewhere the switches are inert.
    this.faults = this.testing ? faultsOf(opts.faults) : { links: new LinkFaults() }
    this.dataDir = dataDir
    this.store = store
    this.libp2p = libp2p
    this.peers = new PeerManager(libp2p, store, blocked)
    this.limits = limits
    const peers = this.peers
    limits.attach({
      matters: async peer => await peers.matters(peer),
      disconnect: async peer => { await libp2p.hangUp(peerIdFromString(peer)) }
    })
    this.sync = new SyncEngine(libp2p, store, this.peers, {
      gate: limits,
      readTimeoutMs: opts.readTimeoutMs,
      copyConcurrency: opts.copyConcurrency,
      graceMs: opts.graceMs,
      approveCopy: opts.approveCopy,
      discardLocal: opts.discardLocal,
      acceptVolumes: opts.acceptVolumes,
      acceptVolumesFrom: opts.acceptVolumesFrom,
      report: opts.report,
      // The operator introduces the peers it trusts (--join): they may replace a foreign replica with --discard-local.
      trusted: (opts.join ?? []).map(a => /\/p2p\/([^/]+)$/.exec(a)?.[1]).filter((p): p is string => p !== undefined),
      prepareTimeoutMs: opts.prepareTimeoutMs,
      preparedExpiryMs: opts.preparedExpiryMs,
      promiseMs: opts.promiseMs,
      ...(this.testing ? { afterCommit: async vol => { await cutAfterCommit(this.faults, this.peers, libp2p.peerId.toString(), vol) } } : {}),
      faults: this.testing ? this.faults : {},
      telemetry: metrics
    })
    const sync = this.sync
    this.volumes = new VolumeService(store, libp2p.peerId.toString(), {
      allModeWriter: async (vol, record) => await ops.allModeWrite(vol, async () => await sync.allMode.write(vol, record)),
      offlineReason: volume => sync.states.offline.get(volume),
      // Reads of chunks this node lacks (a wannabe's) are fetched from the other members.
      chunkSource: async (vol, hash, _length, signal) => await sync.readChunk(vol, hash, signal)
    })
    // Built now, listening once the engine runs (start()).
    this.apiToken = api?.token
    this.api = api === undefined ? undefined : new HttpApi(this, { testing: this.testing, token: api.token, allowedHosts: api.allowedHosts, metricsPublic: opts.metricsPublic, observe: (...a) => { metrics.http(...a) }, ...(api.tls !== undefined ? { tls: api.tls } : {}) })
  }

  get peerId (): string { return this.libp2p.peerId.toString() }

  static async start (opts: NodeOptions): Promise<ReplicantNode> {
    apiAddress(opts) // an exposed API without TLS is refused before anything is created
    // A start that fails takes back a data dir it initialised itself (and nothing else).
    const fresh = await readdir(opts.dataDir).then(files => files.length === 0 ? 'empty' : undefined, () => 'absent' as const)
    try {
      return await ReplicantNode.startIn(opts)
    } catch (err) {
      if (fresh !== undefined) await removeInitialised(opts.dataDir, fresh === 'absent').catch((e: Error) => { log.error('cleaning up %s: %s', opts.dataDir, e.message) })
      throw err
    }
  }

  private static async startIn (opts: NodeOptions): Promise<ReplicantNode> {
    // A bad key fails the start before anything is written; private files: node/data-dir.ts.
    const swarm = opts.swarmKeyFile !== undefined ? await readSwarmKeyFile(opts.swarmKeyFile) : undefined
    if (swarm?.exposed === true) opts.report?.(`warning: swarm key file ${opts.swarmKeyFile} is readable by other users (chmod 600 it)`)
    await makeDirPrivate(opts.dataDir)
    const identity = await loadOrCreateIdentity(opts.dataDir)
    const api = await prepareApi(opts.dataDir, opts)
    const store = await Store.open(opts.dataDir, { ...(opts.packTargetBytes !== undefined ? { packTargetBytes: opts.packTargetBytes } : {}), recordSynced: opts.testing === true })
    if (opts.testing === true) armFromEnv(process.env.REPLICANT_CRASH_AT) // and packs record their fsynced lengths (power-loss runs)
    let libp2p: Libp2p | undefined
    try {
      await makeDataDirPrivate(opts.dataDir) // after level created its files at open
      const blocked = new Set<string>()
      const limits = new PeerLimits(opts.limits)
      const listen = opts.listen ?? [...DEFAULTS.listen]
      const { metrics, libp2pMetrics } = createMetrics(opts)
      // Refused both ways: the peers a test cut off, and the peers banned for going past their limits.
      const refused = { has: (peer: string) => blocked.has(peer) || limits.isBanned(peer) }
      libp2p = await createReplicantLibp2p({ maxConnections: opts.maxConnections, inboundRate: opts.inboundRate, privateKey: identity.privateKey, listen, connectionGater: blockingGater(refused), ...(swarm !== undefined ? { swarmKey: swarm.key } : {}), ...(libp2pMetrics !== undefined ? { metrics: libp2pMetrics } : {}) }).catch((err: Error) => {
        throw addressInUse(err, listen) ?? err
      })
      const node = new ReplicantNode(opts.dataDir, store, libp2p, blocked, limits, opts, api, swarm?.fingerprint, metrics)
      await node.sync.start()
      node.ops.start()
      await node.peers.start(opts.join ?? [], opts)
      if (node.api !== undefined && api !== undefined) {
        node.apiUrl = (await node.api.listen(api.host, api.port)).url
        await writeApiInfo(opts.dataDir, { url: node.apiUrl, pid: process.pid, peerId: node.peerId, ...(api.tls !== undefined ? { tlsCert: api.tls.certFile } : {}) })
      }
      log('started %s on %o api %s', node.peerId, node.multiaddrs(), node.apiUrl)
      return node
    } catch (err) {
      await Promise.resolve(libp2p?.stop()).catch(() => {})
      await store.close().catch(() => {})
      throw err
    }
  }

  multiaddrs (): string[] {
    return this.libp2p.getMultiaddrs().map(ma => ma.toString())
  }

  /** Stops API, peer and store, in that order; clears the dirty flags (clean shutdown). Idempotent. */
  async stop (): Promise<void> {
    this.stopping ??= (async () => {
      await this.api?.close()
      if (this.api !== undefined) await removeApiInfo(this.dataDir)
      this.peers.stop()
      this.ops.stop()
      await this.sync.stop()
      await this.libp2p.stop()
      await this.store.close()
      log('stopped %s', this.peerId)
    })()
    await this.stopping
  }

  /**
   * Creates a volume. `replicas` lists the other member peer ids (`self` may name this node,
   * which is always a member). Reachable members create it at once, the others when they
   * are next seen.
   */
  async createVolume (body: Partial<CreateVolumeOptions> & { replicas?: unknown }): Promise<VolumeRecord & { announce: AnnounceResult[] }> {
    const members = [this.peerId]
    if (body.replicas !== undefined) {
      if (!Array.isArray(body.replicas) || !body.replicas.every(r => typeof r === 'string' && r.length > 0)) {
        throw new InvalidInputError(Codes.BAD_REQUEST, 'replicas must be a list of peer ids')
      }
      for (const r of body.replicas as string[]) {
        if (r === 'self') continue
        try { peerIdFromString(r) } catch { throw new InvalidInputError(Codes.BAD_REQUEST, `not a peer id: ${r}`) }
        members.push(r)
      }
    }
    const vol = await this.volumes.createVolume({ ...(body as CreateVolumeOptions), members })
    return { ...vol, announce: await this.sync.announce(vol) }
  }

  /**
   * Compacts a volume's change log: purges tombstones every other member has already applied
   * (from what they asked for), or, with `upto`, everything up to that seq; members further
   * behind are then given a full copy.
   */
  async compactLog (volume: string, body: { upto?: unknown } = {}): Promise<CompactResult> {
    const vol = await this.volumes.volume(volume)
    const applied = await this.store.listApplied(vol.name)
    // A member never seen holds nothing of ours: it does not hold the safe point (never-seen.ts).
    const neverSeen = await neverSeenMembers(this.peers, vol, this.peerId, this.neverSeenAfterMs)
    const others = vol.members.filter(m => m !== this.peerId && !neverSeen.has(m))
    const safeUpto = others.length === 0 ? vol.seq : Math.min(...others.map(m => applied[m] ?? 0))
    let upto = safeUpto
    if (body.upto !== undefined) {
      if (typeof body.upto !== 'number' || !Number.isSafeInteger(body.upto) || body.upto < 0) throw new InvalidInputError(Codes.BAD_REQUEST, 'upto must be a non-negative integer')
      upto = body.upto
    }
    return { ...await this.store.compactLog(vol.name, upto), safeUpto, neverSeen: [...neverSeen] }
  }

  /** `force` commits without a majority of the members (docs/CONSISTENCY.md). */
  async setWriteMode (volume: string, writeMode: unknown, opts: { force?: unknown } = {}): Promise<AnnouncedVolume> {
    return announced(await this.sync.membership.setWriteMode(volume, writeMode as never, { force: forceOf(opts) }))
  }

  /** Moves a replica online from one member to another (volume-move.ts; each step also an event). */
  async moveVolume (volume: string, from: unknown, to: unknown, opts: MoveOpts = {}): Promise<MoveResult> {
    return await moveVolume(this, volume, from, to, opts)
  }

  /** Removes a member online; the volume goes on with the others at a new generation. */
  async removeReplica (volume: string, peerId: unknown, opts: { force?: unknown } = {}): Promise<AnnouncedVolume> {
    if (typeof peerId !== 'string') throw new InvalidInputError(Codes.BAD_REQUEST, 'peerId must be a string')
    return announced(await this.sync.removeReplica(volume, peerId, { force: forceOf(opts) }))
  }

  /** Adds a member to a volume online; it becomes a wannabe that serves at once. A never-seen peer needs `force`. */
  async addReplica (volume: string, peerId: unknown, opts: { force?: unknown } = {}): Promise<AnnouncedVolume> {
    if (typeof peerId !== 'string') throw new InvalidInputError(Codes.BAD_REQUEST, 'peerId must be a string')
    return announced(await this.sync.addReplica(volume, peerId, { force: forceOf(opts) }))
  }

  /** Lets `peer`, not a member, read `volume` (replication/grants.ts): a new generation, announced. */
  async grantReader (volume: string, peer: unknown, access?: unknown): Promise<AnnouncedVolume> {
    const { volume: vol, announce } = await this.sync.membership.grants.grant(volume, peer, access)
    return { ...vol, announce }
  }

  /** Takes a reader's access away; its open streams for the volume are closed at once. */
  async revokeReader (volume: string, peer: unknown): Promise<AnnouncedVolume> {
    const { volume: vol, announce } = await this.sync.membership.grants.revoke(volume, peer)
    return { ...vol, announce }
  }

  /** The operator lets `from` create `volume` on this node once (`volume accept VOL --from PEER`). */
  async acceptVolume (volume: string, from: unknown): Promise<{ volume: string, from: string, accepted: true }> {
    const name = validateVolumeName(volume)
    if (typeof from !== 'string') throw new InvalidInputError(Codes.BAD_REQUEST, 'from must be a peer id')
    try { peerIdFromString(from) } catch { throw new InvalidInputError(Codes.BAD_REQUEST, `not a peer id: ${from}`) }
    await this.sync.membership.acceptance.approve(name, from)
    return { volume: name, from, accepted: true }
  }

  async listVolumes (): Promise<VolumeRecord[]> {
    return await this.store.listVolumes()
  }

  /** Deletes the replica of a volume this node is no longer a member of (VolumeService.dropVolume). */
  async dropVolume (name: string): Promise<VolumeDropped> {
    return await this.volumes.dropVolume(name)
  }

  async volumeInfo (name: string): Promise<VolumeInfo> {
    const vol = await this.store.requireVolume(validateVolumeName(name))
    const { files, bytes } = await this.store.volumeSize(vol.name)
    const progress = vol.state === 'copy' || vol.state === 'merge' ? this.sync.progress(vol.name) ?? null : null
    const neverSeen = await neverSeenMembers(this.peers, vol, this.peerId, this.neverSeenAfterMs)
    const memberStates = (await this.sync.members(vol)).map(m => ({ ...m, neverSeen: neverSeen.has(m.peerId) }))
    const inDoubt = this.sync.allMode.inDoubt(vol.name)
    return {
      ...vol,
      readers: vol.readers ?? [],
      access: vol.members.includes(this.peerId) ? 'member' : vol.readers?.includes(this.peerId) === true ? 'reader' : 'none',
      state: this.sync.localState(vol),
      files,
      bytes,
      progress,
      ...(this.sync.damaged.get(vol.name) ?? { damagedChunks: 0, damagedFiles: 0 }),
      repairing: this.sync.needsRepair.has(vol.name),
      ...(this.sync.needsRepair.has(vol.name) ? { repair: this.sync.progress(vol.name) ?? null } : {}),
      memberStates,
      decisions: this.sync.membership.decisionsFor(vol.name),
      membershipChanges: this.sync.membership.changesFor(vol.name),
      lacking: this.sync.lacking(vol.name),
      caughtUp: this.sync.holdsAll(vol, memberStates),
      inDoubt: { count: inDoubt.length, txIds: inDoubt },
      generationPromise: this.sync.membership.promiseOf(vol.name),
      localChanges: this.store.localChanges(vol.name)
    }
  }

  /**
   * Chunk garbage collection, then a repack of mostly dead packs unless `repack: false` (see
   * Store.collectGarbage). The answer keeps scanned/deleted/kept/ms/disk and adds `repack`.
   */
  async collectGarbage (body: { youngSeconds?: unknown, repack?: unknown } = {}): Promise<GcResult> {
    const youngMs = typeof body.youngSeconds === 'number' && body.youngSeconds >= 0 ? body.youngSeconds * 1000 : undefined
    if (body.repack !== undefined && typeof body.repack !== 'boolean') throw new InvalidInputError(Codes.BAD_REQUEST, 'repack must be true or false')
    const started = Date.now()
    const r = await this.store.collectGarbage({ ...(youngMs !== undefined ? { youngMs } : {}), repack: body.repack !== false })
    this.ops.registry.gc(r.deleted, r.repack.bytesFreed)
    return { ...r, ms: Date.now() - started, disk: await this.diskUsage() }
  }

  /** Bytes of chunk pack files and of the index database on disk (node/disk-usage.ts). */
  async diskUsage (): Promise<{ packBytes: number, indexBytes: number }> { return await diskUsage(this.dataDir) }

  async status (): Promise<StatusResponse> {
    return {
      version: VERSION,
      peerId: this.peerId,
      multiaddrs: this.multiaddrs(),
      api: this.apiUrl,
      dataDir: this.dataDir,
      uptimeMs: Date.now() - this.startedAt,
      uncleanShutdown: this.store.foundDirty,
      privateSwarm: this.swarmKeyFingerprint !== undefined,
      ...(this.swarmKeyFingerprint !== undefined ? { swarmKeyFingerprint: this.swarmKeyFingerprint } : {}),
      peers: await this.peers.list(),
      disk: await this.diskUsage(),
      // Chunk traffic this node received since start (all fetches; on-demand and copy are subsets).
      fetched: { ...this.sync.fetcher.counters, onDemand: { ...this.sync.reader.counters }, copy: { ...this.sync.copy.counters }, from: this.sync.holders.receivedFrom() }, served: this.sync.served.view(),
      volumes: await Promise.all((await this.listVolumes()).map(async v => await this.volumeInfo(v.name))),
      volumeRefusals: [...this.sync.membership.acceptance.refused],
      throttledPeers: this.limits.throttled(),
      memory: { youngChunks: this.store.youngChunks, notices: this.sync.remoteEntries, knownPeers: this.peers.knownPeers, strangers: this.peers.strangersSeen, limitedPeers: this.limits.size.tracked, bannedPeers: this.limits.size.banned }
    }
  }
}

/** A change's `force` from the API: true, false or absent. */
function forceOf (opts: { force?: unknown }): boolean {
  if (opts.force !== undefined && typeof opts.force !== 'boolean') throw new InvalidInputError(Codes.BAD_REQUEST, 'force must be true or false')
  return opts.force === true
}

function announced (r: ChangeResult): AnnouncedVolume {
  return { ...r.volume, announce: r.announce, promises: r.promises, ...(r.warning !== undefined ? { warning: r.warning } : {}), ...(r.completed !== undefined ? { completed: r.completed } : {}) }
}
