/**
 * The operator's view of a node, built by the composition root: its metrics (node/metrics.ts),
 * its event stream (core/events.ts fed by node/node-events.ts) and its conflicts
 * (replication/conflicts.ts). The node delegates the API's MetricsSource, EventsSource and
 * ConflictAdmin here.
 */
import type { Libp2p } from '@libp2p/interface'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { NodeEvents } from '../core/events.js'
import { isReplicantError, Codes } from '../core/errors.js'
import type { FileRecord, VolumeRecord } from '../core/records.js'
import type { Store } from '../store/store.js'
import type { SyncEngine } from '../replication/sync-engine.js'
import type { VolumeService } from '../replication/volume-service.js'
import type { PeerLimits } from '../replication/peer-limits.js'
import { Conflicts, type ConflictList, type ResolveResult } from '../replication/conflicts.js'
import type { StatusResponse } from '../api/types.js'
import { NodeMetrics } from './metrics.js'

export type { NodeMetrics } from './metrics.js'
import { NodeEventSources } from './node-events.js'

export interface ObservabilityOptions {
  /** `GET /metrics` without the API token (`--metrics-public`), for a scraper that cannot send one; the Host check still applies. */
  metricsPublic?: boolean
  /** libp2p's own metrics (@libp2p/prometheus-metrics) on the node's registry (default true). */
  libp2pMetrics?: boolean
}

/** What the operator's view reads of the node. */
export interface OpsHost {
  readonly store: Store
  readonly libp2p: Libp2p
  readonly sync: SyncEngine
  readonly volumes: VolumeService
  readonly limits: PeerLimits
  status: () => Promise<StatusResponse>
}

/** The metrics registry, made before libp2p so that libp2p registers its metrics on it. */
export function createMetrics (opts: ObservabilityOptions & { dataDir: string }): { metrics: NodeMetrics, libp2pMetrics?: ReturnType<typeof prometheusMetrics> } {
  const metrics = new NodeMetrics()
  if (opts.libp2pMetrics === false) return { metrics }
  // The plugin keeps one name -> metric map per process and clears it (and prom-client's
  // global registry, unused here) at each creation, so each node's libp2p metrics land on
  // its own registry; see docs/METRICS.md for what that means for nodes sharing a process.
  return { metrics, libp2pMetrics: prometheusMetrics({ registry: metrics.registry, statfsLocation: opts.dataDir }) }
}

export class NodeOps {
  readonly events = new NodeEvents()
  private sources: NodeEventSources | undefined
  private conflictView: Conflicts | undefined

  constructor (readonly registry: NodeMetrics, private readonly host: () => OpsHost) {}

  start (): void {
    const h = this.host()
    this.sources = new NodeEventSources(this.events, h.libp2p, h.store, h.sync)
    this.sources.start()
  }

  stop (): void { this.sources?.stop() }

  get peerId (): string { return this.host().libp2p.peerId.toString() }

  async metrics (): Promise<{ contentType: string, body: string }> {
    const h = this.host()
    const body = await this.registry.scrape(await h.status(), {
      localChanges: v => h.store.localChanges(v),
      limits: h.limits.totals,
      writes: { ...h.store.counters, putBatches: h.volumes.batcher.counters.batches, batchedPuts: h.volumes.batcher.counters.puts }
    })
    return { contentType: this.registry.contentType, body }
  }

  /** An all-mode write this node coordinates, counted by outcome. */
  async allModeWrite (vol: VolumeRecord, write: () => Promise<FileRecord>): Promise<FileRecord> {
    try {
      const rec = await write()
      this.registry.allModeWrite(vol.name, 'committed')
      return rec
    } catch (err) {
      if (isReplicantError(err) && err.code === Codes.WRITE_NOT_ACKNOWLEDGED) this.registry.allModeWrite(vol.name, 'aborted')
      throw err
    }
  }

  private get conflictsOf (): Conflicts {
    const h = this.host()
    this.conflictView ??= new Conflicts(h.volumes, async (v, p) => await h.store.getFile(v, p))
    return this.conflictView
  }

  async conflicts (volume: string): Promise<ConflictList> { return await this.conflictsOf.list(volume) }

  async resolveConflict (volume: string, path: unknown, keep: unknown): Promise<ResolveResult> { return await this.conflictsOf.resolve(volume, path, keep) }
}
