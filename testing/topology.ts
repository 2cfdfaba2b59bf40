/**
 * Scripted topologies: N Replicant nodes on loopback, each on its own data dir, as separate
 * processes (the real binary, `replicant start --testing`) or in this process
 * (ReplicantNode.start with testing on), with volumes, writes and reads through each node's
 * HTTP API, and faults:
 *
 * - kill(node): SIGKILL (process nodes only); restart(node) brings it back on the same data
 *   dir and, if it can, the same libp2p port. A restarted node is given no --join: it must
 *   find the others by itself from the peers it remembers.
 * - stop(node): a clean shutdown (SIGTERM); its exit code is returned.
 * - partition([a], [b, c]): nodes of different groups refuse each other (connection gater,
 *   both ways, existing connections hung up), through the nodes' fault routes. Nodes named in
 *   no group are not affected. A node restarted during a partition gets its blocks back
 *   before restart() returns; until then the nodes of the other groups keep refusing it.
 *   heal() lifts every block.
 *
 * Every node started is stopped by close() (and SIGKILLed if this process exits first).
 * The parts: managed-node.ts (one node's life), topology-faults.ts (partitions and links in
 * force), topology-waits.ts (convergence and steady state).
 */
import '../core/polyfill.js'
import { mkdtemp, mkdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Readable } from 'node:stream'
import { ReplicantClient } from '../api/client.js'
import { isReplicantError, Codes } from '../core/errors.js'
import type { LinkShape } from '../replication/link-faults.js'
import type { VersionVector } from '../core/version-vector.js'
import type { FileView } from '../replication/volume-service.js'
import { TopologyError } from './topology-error.js'
import { sha256Hex, type History, type TreeEntry } from './history.js'
import { ManagedNode } from './managed-node.js'
import { TopologyFaults } from './topology-faults.js'
import { cutToSynced, type PowerCut } from './power-loss.js'
import { poll, waitForConvergence, waitForSteady } from './topology-waits.js'
import type { ExitInfo, NodeSpec, TopologyEvent, TopologyNode, TopologyOptions, VolumeSpec, WaitOptions } from './topology-types.js'

export type { NodeKind, NodeSpec, TopologyOptions, TopologyEvent, ExitInfo, VolumeSpec, WaitOptions, TopologyNode } from './topology-types.js'
export { DEFAULT_BIN } from './managed-node.js'
export { TopologyError }

const NAME_RE = /^[a-z][a-z0-9-]{0,31}$/

/** Which failures of a request prove it was not applied. */
export function appliedAfterError (err: unknown): 'no' | 'unknown' {
  // Refused connections never reached a node; a node's own error answer means it did not commit.
  if (isReplicantError(err)) return 'no'
  return 'unknown'
}

export class Topology {
  readonly dir: string
  readonly events: TopologyEvent[] = []
  private readonly byName = new Map<string, ManagedNode>()
  private readonly order: string[] = []
  private readonly volumes = new Map<string, string[]>()
  private readonly faults = new TopologyFaults({ managed: name => this.managed(name), all: () => this.all() })
  private closing: Promise<Map<string, ExitInfo>> | undefined

  private constructor (dir: string, private readonly removeDir: boolean, private readonly opts: TopologyOptions) {
    this.dir = dir
  }

  /** Starts every node and waits until each answers on its API. */
  static async start (opts: TopologyOptions): Promise<Topology> {
    const specs: NodeSpec[] = typeof opts.nodes === 'number'
      ? Array.from({ length: opts.nodes }, (_, i) => ({ name: `n${i + 1}` }))
      : opts.nodes.map(n => typeof n === 'string' ? { name: n } : n)
    if (specs.length === 0) throw new TopologyError(Codes.BAD_TOPOLOGY, 'a topology needs at least one node')
    const names = new Set<string>()
    for (const s of specs) {
      if (!NAME_RE.test(s.name)) throw new TopologyError(Codes.BAD_TOPOLOGY, `node name '${s.name}' must match ${NAME_RE.source}`)
      if (names.has(s.name)) throw new TopologyError(Codes.BAD_TOPOLOGY, `node name '${s.name}' is used twice`)
      names.add(s.name)
    }
    const dir = opts.dir !== undefined ? resolve(opts.dir) : await mkdtemp(join(tmpdir(), 'replicant-topology-'))
    await mkdir(dir, { recursive: true })
    const topo = new Topology(dir, opts.keepDir === undefined ? opts.dir === undefined : !opts.keepDir, opts)
    for (const s of specs) {
      topo.byName.set(s.name, new ManagedNode(s.name, s.kind ?? opts.kind ?? 'process', dir, s, opts))
      topo.order.push(s.name)
    }
    try {
      await topo.startAll(opts.connect ?? 'mesh')
    } catch (err) {
      await topo.close().catch(() => {})
      throw err
    }
    return topo
  }

  private async startAll (connect: NonNullable<TopologyOptions['connect']>): Promise<void> {
    const nodes = this.all()
    // Identities and ports are fixed before any node starts, so every node can be told every
    // other's multiaddr and all start at once; a join that fails now is redialled by the node.
    const addrs = await Promise.all(nodes.map(async n => await n.prepare()))
    await Promise.all(nodes.map(async (n, i) => {
      const join = connect === 'mesh' ? addrs.filter((_, j) => j !== i) : connect === 'star' && i > 0 ? [addrs[0]] : []
      await n.start(join, connect === 'bootstrap' && i > 0 ? [addrs[0]] : [])
    }))
    for (const n of nodes) {
      this.opts.history?.alias(n.peerId, n.name)
      this.emit('start', n.name, `${n.peerId} ${n.multiaddrs[0] ?? ''}`)
    }
    if (connect !== 'mesh' || nodes.length <= 1) return
    await poll('every node connected to every other', { timeoutMs: this.opts.startTimeoutMs ?? 60_000 }, async () => {
      for (const n of nodes) {
        const connected = new Set((await n.client.peers()).peers.filter(p => p.connected).map(p => p.peerId))
        if (nodes.some(o => o !== n && !connected.has(o.peerId))) return undefined
      }
      return true
    })
  }

  private emit (kind: string, node?: string, detail?: string): void {
    const e: TopologyEvent = { at: Date.now(), kind, ...(node !== undefined ? { node } : {}), ...(detail !== undefined ? { detail } : {}) }
    this.events.push(e)
    this.opts.onEvent?.(e)
  }

  get history (): History | undefined { return this.opts.history }

  names (): string[] { return [...this.order] }

  get nodes (): TopologyNode[] { return this.all() }

  node (name: string): TopologyNode { return this.managed(name) }

  private all (): ManagedNode[] { return this.order.map(n => this.byName.get(n)!) }

  private managed (name: string): ManagedNode {
    const n = this.byName.get(name)
    if (n === undefined) throw new TopologyError(Codes.UNKNOWN_NODE, `no node named '${name}' in this topology (nodes: ${this.order.join(', ')})`, { node: name })
    return n
  }

  client (name: string): ReplicantClient { return this.managed(name).client }

  /** The node name of a peer id, if it is one of this topology's. */
  nameOf (peerId: string): string | undefined {
    return this.order.find(n => this.byName.get(n)!.peerId === peerId)
  }

  // ---- volumes and files ----

  /**
   * Creates a volume on `spec.on` with the given members and waits until every running member
   * holds it. Members that are down get it when they are next seen. Returns the node's answer.
   */
  async createVolume (name: string, spec: VolumeSpec = {}, wait: WaitOptions = {}): Promise<unknown> {
    const members = spec.members ?? this.names()
    for (const m of members) this.managed(m)
    const on = spec.on ?? members[0]
    if (!members.includes(on)) throw new TopologyError(Codes.BAD_TOPOLOGY, `volume ${name} is created on ${on}, which is not one of its members`)
    const replicas = members.filter(m => m !== on).map(m => this.managed(m).peerId)
    const vol: unknown = await this.client(on).createVolume({ name, replicas, ...(spec.writeMode !== undefined ? { writeMode: spec.writeMode } : {}), ...(spec.chunkSize !== undefined ? { chunkSize: spec.chunkSize } : {}) })
    this.volumes.set(name, [...members])
    this.emit('volume', on, `${name} members ${members.join(',')}`)
    await poll(`volume ${name} on every running member`, wait, async () => {
      for (const m of members) {
        const n = this.managed(m)
        if (!n.running) continue
        if (!(await n.client.listVolumes()).volumes.some(v => v.name === name)) return undefined
      }
      return true
    })
    return vol
  }

  /** Member names of a volume: as created here, or as the first running node that holds it says. */
  async members (volume: string): Promise<string[]> {
    const known = this.volumes.get(volume)
    if (known !== undefined) return known
    for (const n of this.all()) {
      if (!n.running) continue
      const info = await n.client.volumeInfo(volume).catch(() => undefined)
      if (info === undefined) continue
      const names = info.members.map(p => this.nameOf(p)).filter((x): x is string => x !== undefined)
      this.volumes.set(volume, names)
      return names
    }
    throw new TopologyError(Codes.VOLUME_NOT_FOUND, `no running node holds volume ${volume}`)
  }

  /** Writes `data` at `path` on `node`; resolves once the node acknowledged it (durable there). */
  async write (node: string, volume: string, path: string, data: Uint8Array | string, opts: { mode?: number, mtime?: number } = {}): Promise<FileView> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data
    const op = this.opts.history?.begin('put', volume, path, node, bytes)
    try {
      const view = await this.client(node).put(volume, path, Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]), { size: bytes.byteLength, ...opts })
      if (op !== undefined) this.opts.history!.ack(op, view.version)
      return view
    } catch (err) {
      if (op !== undefined) this.opts.history!.fail(op, err, appliedAfterError(err))
      throw err
    }
  }

  /** Deletes `path` on `node` (a tombstone that replicates). */
  async remove (node: string, volume: string, path: string): Promise<{ path: string, version?: VersionVector }> {
    const op = this.opts.history?.begin('delete', volume, path, node)
    try {
      const r = await this.client(node).remove(volume, path) as { path: string, version?: VersionVector }
      if (op !== undefined) this.opts.history!.ack(op, r.version)
      return r
    } catch (err) {
      if (op !== undefined) this.opts.history!.fail(op, err, appliedAfterError(err))
      throw err
    }
  }

  /** A whole file's bytes; `signal` gives up (rejects at once, the answer's socket destroyed) even mid-file. */
  async read (node: string, volume: string, path: string, signal?: AbortSignal): Promise<Buffer> {
    signal?.throwIfAborted()
    const why = (): Error => signal?.reason instanceof Error ? signal.reason : new Error(`read of ${path} on ${node} aborted`)
    const opening = this.client(node).open(volume, path)
    let stop: () => void = () => {}
    const aborted = new Promise<never>((resolve, reject) => {
      stop = () => { reject(why()) }
      signal?.addEventListener('abort', stop, { once: true })
    })
    aborted.catch(() => {})
    try {
      // A read that stalls before its answer starts is given up too (the request ends with the node).
      const res = await Promise.race([opening, aborted])
      const onAbort = (): void => { res.destroy(why()) }
      signal?.addEventListener('abort', onAbort, { once: true })
      try {
        const parts: Buffer[] = []
        for await (const p of res) parts.push(p as Buffer)
        return Buffer.concat(parts)
      } finally {
        signal?.removeEventListener('abort', onAbort)
      }
    } finally {
      signal?.removeEventListener('abort', stop)
      opening.then(res => { if (signal?.aborted === true) res.destroy() }, () => {})
    }
  }

  async list (node: string, volume: string, prefix?: string): Promise<FileView[]> {
    return (await this.client(node).list(volume, prefix)).files
  }

  /** The node's tree of `volume` with the sha256 of every file's bytes, read back through the API. */
  async tree (node: string, volume: string): Promise<TreeEntry[]> {
    const out: TreeEntry[] = []
    for (const f of await this.list(node, volume)) {
      out.push({ path: f.path, size: f.size, version: f.version, sha256: sha256Hex(await this.read(node, volume, f.path)) })
    }
    return out
  }

  // ---- faults ----

  /** SIGKILL: the node gets no chance to close anything. */
  async kill (name: string): Promise<ExitInfo> {
    const e = await this.managed(name).kill()
    this.emit('kill', name, `signal ${String(e.signal)}`)
    return e
  }

  /** SIGKILL, then every pack cut to what was fsynced (testing/power-loss.ts): a power cut. */
  async powerLoss (name: string): Promise<PowerCut> {
    await this.kill(name)
    const cut = await cutToSynced(this.managed(name).dataDir)
    this.emit('power-loss', name, `${cut.cut} of ${cut.packs} packs cut, ${cut.bytesCut} B lost`)
    return cut
  }

  /** Arms a crash point (core/crash-points.ts) on a running node: it SIGKILLs itself there. */
  async crashAt (name: string, point: string, skip = 0): Promise<void> {
    await this.client(name).crashAt(point, skip)
    this.emit('crash-armed', name, `${point} after ${skip} passes`)
  }

  /** add-replica through `on`; the members known here follow the node's answer. `force`: without a majority (never in the chaos). */
  async addReplica (volume: string, on: string, node: string, opts: { force?: boolean } = {}): Promise<string[]> {
    return this.learnMembers(volume, await this.client(on).addReplica(volume, this.managed(node).peerId, opts))
  }

  async removeReplica (volume: string, on: string, node: string, opts: { force?: boolean } = {}): Promise<string[]> {
    return this.learnMembers(volume, await this.client(on).removeReplica(volume, this.managed(node).peerId, opts))
  }

  private learnMembers (volume: string, vol: { members: string[], generation: number }): string[] {
    const names = vol.members.map(p => this.nameOf(p) ?? p)
    this.volumes.set(volume, names)
    this.emit('members', undefined, `${volume} generation ${vol.generation}: ${names.join(',')}`)
    return names
  }

  /** Forgets the members known here: the next members() asks a running node. */
  forgetMembers (volume: string): void { this.volumes.delete(volume) }

  /** A clean stop (SIGTERM; the node closes its store). */
  async stop (name: string): Promise<ExitInfo> {
    const e = await this.managed(name).stop()
    this.emit('stop', name, `code ${String(e.code)}${e.timedOut === true ? ' (timed out, killed)' : ''}`)
    return e
  }

  /**
   * Starts the node again on its data dir (stopping it cleanly first if it runs), with no
   * --join: it redials the peers it remembers. Its partition blocks are applied again.
   */
  async restart (name: string): Promise<void> {
    const n = this.managed(name)
    if (n.running) await this.stop(name)
    await n.start([])
    const blocked = await this.faults.reapply(n)
    this.emit('restart', name, `${n.multiaddrs[0] ?? ''}${blocked > 0 ? ` (blocking ${blocked})` : ''}`)
  }

  /**
   * Cuts the groups off from each other (replacing any partition in force): every running
   * node of a group refuses the nodes of the other groups, both ways.
   */
  async partition (...groups: string[][]): Promise<void> {
    await this.faults.partition(groups)
    this.emit('partition', undefined, this.faults.partitions().map(g => `[${g.join(',')}]`).join(' '))
  }

  /** Lifts every block on every running node; they reconnect by themselves. */
  async heal (): Promise<void> {
    await this.faults.heal()
    this.emit('heal')
  }

  /** The partition in force (groups of node names; empty when healed). */
  partitions (): string[][] { return this.faults.partitions() }

  /**
   * Makes the link between `a` and `b` slow or lossy, both ways: each node's replies to the
   * other (index pages, chunk frames) wait `delayMs`, share `bytesPerSecond`, and are lost
   * (their stream reset) with chance `dropRate`. Simulated inside the nodes (libp2p's TCP
   * transport has no hook for it); kept across restarts until fixLinks().
   */
  async slowLink (a: string, b: string, shape: Partial<LinkShape>, seed?: string): Promise<void> {
    await this.faults.slowLink(a, b, shape, seed)
    this.emit('slow-link', undefined, `${a}<->${b} ${JSON.stringify(shape)}`)
  }

  /** Restores every link on every running node. */
  async fixLinks (): Promise<void> {
    await this.faults.fixLinks()
    this.emit('fix-links')
  }

  // ---- waiting ----

  private async waitNodes (volume: string, opts: WaitOptions): Promise<ManagedNode[]> {
    const names = opts.nodes ?? await this.members(volume)
    return names.map(n => this.managed(n))
  }

  /**
   * Waits until the given nodes (default: every running member) list the same tree of
   * `volume`: paths, sizes and versions. Returns that listing.
   */
  async waitForConvergence (volume: string, opts: WaitOptions = {}): Promise<FileView[]> {
    const nodes = (await this.waitNodes(volume, opts)).filter(n => opts.nodes !== undefined || n.running)
    return await waitForConvergence(volume, nodes, opts)
  }

  /**
   * Waits until every member (all must be running) holds `volume` in state `steady`, lacks
   * nothing, is connected to every other member and has applied each one's change log up to
   * the head it last heard, and all list the same tree; twice in a row. Returns the listing.
   */
  async waitForSteady (volume: string, opts: WaitOptions = {}): Promise<FileView[]> {
    return await waitForSteady(volume, await this.waitNodes(volume, opts), opts, p => this.nameOf(p))
  }

  // ---- teardown ----

  /**
   * Stops every running node (cleanly; a node that does not stop in time is killed) and
   * removes the topology's temp dir. Idempotent. Returns how each node that ran exited.
   */
  async close (): Promise<Map<string, ExitInfo>> {
    this.closing ??= (async () => {
      const exits = new Map<string, ExitInfo>()
      await Promise.all(this.all().filter(n => n.running).map(async n => {
        try {
          exits.set(n.name, await n.stop())
        } catch (err) {
          exits.set(n.name, { code: null, signal: null })
          this.emit('error', n.name, (err as Error).message)
        }
      }))
      this.emit('close')
      if (this.removeDir) await rm(this.dir, { recursive: true, force: true, maxRetries: 3 })
      return exits
    })()
    return await this.closing
  }
}
