/**
 * The node's Prometheus metrics (`GET /metrics`, docs/METRICS.md), on prom-client with a
 * Registry of its own per node: several nodes in one process (tests, topologies) never share
 * a counter. libp2p's own metrics (@libp2p/prometheus-metrics) register on the same registry.
 *
 * Two kinds: counters moved as things happen (chunk traffic through the TransferSink that
 * replication is given, HTTP requests, all-mode outcomes, GC), and gauges set from the node's
 * status at each scrape (member states, lag, progress, store bytes, peers), reset first so a
 * volume or member that went away leaves no stale series. Labels: volume, member (a peer id of
 * the volume's replica set), source, route; never a file or a chunk.
 */
import { Registry, Counter, Gauge, Histogram } from 'prom-client'
import type { ServedSource, TransferSink, TransferSource } from '../core/telemetry.js'
import type { StatusResponse } from '../api/types.js'
import type { LocalChanges } from '../store/change-counts.js'

/** What a scrape reads besides the status: counts kept elsewhere, monotonic since start. */
export interface ScrapeExtras {
  localChanges: (volume: string) => LocalChanges
  limits: { refused: number, bans: number }
  /** Commit groups and the commits in them (store/group-commit.ts); small-PUT batches and their puts (put-batcher.ts). */
  writes: { groups: number, groupedCommits: number, putBatches: number, batchedPuts: number }
}

const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export class NodeMetrics implements TransferSink {
  readonly registry = new Registry()
  private readonly receivedBytes: Counter<'volume' | 'source'>
  private readonly receivedChunks: Counter<'volume' | 'source'>
  private readonly sentBytes: Counter<'volume' | 'source'>
  private readonly sentChunks: Counter<'volume' | 'source'>
  private readonly onDemand: Histogram<'volume'>
  private readonly onDemandFailures: Counter<'volume'>
  private readonly allMode: Counter<'volume' | 'outcome'>
  private readonly httpRequests: Counter<'route' | 'method' | 'status'>
  private readonly httpDuration: Histogram<'route' | 'method'>
  private readonly gcRuns: Counter
  private readonly gcReclaimed: Counter
  private readonly gcChunks: Counter
  private readonly gauges = new Map<string, Gauge<string>>()
  private readonly scraped = new Map<string, Counter<string>>()

  constructor () {
    const r = [this.registry]
    this.receivedBytes = new Counter({ name: 'replicant_received_bytes_total', help: 'Chunk bytes received and verified, by volume and what they were fetched for (pull, copy, on-demand)', labelNames: ['volume', 'source'], registers: r })
    this.receivedChunks = new Counter({ name: 'replicant_received_chunks_total', help: 'Chunks received and verified, by volume and source', labelNames: ['volume', 'source'], registers: r })
    this.sentBytes = new Counter({ name: 'replicant_sent_bytes_total', help: 'Chunk bytes served to members and readers, by volume and what they were wanted for (on-demand: a reader waits on them; bulk: a pull or a copy)', labelNames: ['volume', 'source'], registers: r })
    this.sentChunks = new Counter({ name: 'replicant_sent_chunks_total', help: 'Chunks served to members and readers, by volume and source (on-demand, bulk)', labelNames: ['volume', 'source'], registers: r })
    this.onDemand = new Histogram({ name: 'replicant_on_demand_read_duration_seconds', help: 'Time to fetch a chunk a read needed and this node lacked (wannabe reads), successful fetches', labelNames: ['volume'], buckets: SECONDS_BUCKETS, registers: r })
    this.onDemandFailures = new Counter({ name: 'replicant_on_demand_read_failures_total', help: 'On-demand chunk fetches that failed (timeout, no member holds it)', labelNames: ['volume'], registers: r })
    this.allMode = new Counter({ name: 'replicant_all_mode_writes_total', help: 'All-mode writes this node coordinated, by outcome (committed, aborted)', labelNames: ['volume', 'outcome'], registers: r })
    this.httpRequests = new Counter({ name: 'replicant_http_requests_total', help: 'HTTP API requests answered, by route, method and status', labelNames: ['route', 'method', 'status'], registers: r })
    this.httpDuration = new Histogram({ name: 'replicant_http_request_duration_seconds', help: 'HTTP API request durations until the answer ended (the events stream: its whole life)', labelNames: ['route', 'method'], buckets: SECONDS_BUCKETS, registers: r })
    this.gcRuns = new Counter({ name: 'replicant_gc_runs_total', help: 'Garbage collections run', registers: r })
    this.gcReclaimed = new Counter({ name: 'replicant_gc_reclaimed_bytes_total', help: 'Pack file bytes given back by GC and repack', registers: r })
    this.gcChunks = new Counter({ name: 'replicant_gc_deleted_chunks_total', help: 'Unreferenced chunks deleted by GC', registers: r })
    for (const [name, help, labels] of GAUGES) this.gauges.set(name, new Gauge({ name, help, labelNames: labels, registers: r }))
    for (const [name, help, labels] of SCRAPED_COUNTERS) this.scraped.set(name, new Counter({ name, help, labelNames: labels, registers: r }))
  }

  // ---- TransferSink (replication calls these) ----
  received (volume: string, source: TransferSource, bytes: number): void {
    this.receivedBytes.inc({ volume, source }, bytes)
    this.receivedChunks.inc({ volume, source })
  }

  sent (volume: string, source: ServedSource, bytes: number, chunks: number): void {
    if (chunks === 0) return
    this.sentBytes.inc({ volume, source }, bytes)
    this.sentChunks.inc({ volume, source }, chunks)
  }

  onDemandRead (volume: string, seconds: number, ok: boolean): void {
    if (ok) this.onDemand.observe({ volume }, seconds)
    else this.onDemandFailures.inc({ volume })
  }

  // ---- the node and the HTTP API call these ----
  allModeWrite (volume: string, outcome: 'committed' | 'aborted'): void { this.allMode.inc({ volume, outcome }) }

  http (route: string, method: string, status: number, seconds: number): void {
    this.httpRequests.inc({ route, method, status: String(status) })
    this.httpDuration.observe({ route, method }, seconds)
  }

  gc (deletedChunks: number, bytesFreed: number): void {
    this.gcRuns.inc()
    this.gcChunks.inc(deletedChunks)
    if (bytesFreed > 0) this.gcReclaimed.inc(bytesFreed)
  }

  /** Sets every gauge from `s` and returns the text exposition. */
  async scrape (s: StatusResponse, extras: ScrapeExtras): Promise<string> {
    for (const g of this.gauges.values()) g.reset()
    const g = (name: string, labels: Record<string, string>, value: number): void => { this.gauges.get(name)!.set(labels, value) }
    g('replicant_store_pack_bytes', {}, s.disk.packBytes)
    g('replicant_store_index_bytes', {}, s.disk.indexBytes)
    g('replicant_peers_connected', {}, s.peers.filter(p => p.connected).length)
    g('replicant_peers_known', {}, s.peers.length)
    g('replicant_peers_throttled', {}, (s.throttledPeers ?? []).filter(p => !p.banned).length)
    g('replicant_peers_banned', {}, (s.throttledPeers ?? []).filter(p => p.banned).length)
    g('replicant_uptime_seconds', {}, s.uptimeMs / 1000)
    for (const v of s.volumes) {
      const volume = v.name
      g('replicant_volume_generation', { volume }, v.generation)
      g('replicant_volume_seq', { volume }, v.seq)
      g('replicant_volume_files', { volume }, v.files)
      g('replicant_volume_bytes', { volume }, v.bytes)
      g('replicant_volume_lacking_files', { volume }, v.lacking.files)
      g('replicant_volume_lacking_bytes', { volume }, v.lacking.bytes)
      g('replicant_volume_damaged_chunks', { volume }, v.damagedChunks)
      g('replicant_volume_damaged_files', { volume }, v.damagedFiles)
      g('replicant_volume_repairing', { volume }, v.repairing ? 1 : 0)
      g('replicant_all_mode_in_doubt', { volume }, v.inDoubt.count)
      const p = v.progress ?? (v.repairing ? v.repair ?? null : null)
      if (p !== null) {
        g('replicant_copy_done_bytes', { volume }, p.bytesDone)
        g('replicant_copy_size_bytes', { volume }, p.bytesTotal)
        g('replicant_copy_done_files', { volume }, p.filesDone)
        g('replicant_copy_size_files', { volume }, p.filesTotal)
        if (p.etaSeconds !== null) g('replicant_copy_eta_seconds', { volume }, p.etaSeconds)
      }
      for (const m of v.memberStates) {
        const member = m.peerId
        const state = m.self ? v.state : m.state ?? 'unknown'
        g('replicant_member_state', { volume, member, state }, 1)
        g('replicant_member_connected', { volume, member }, m.self || m.connected ? 1 : 0)
        if (m.generation !== null) g('replicant_member_generation', { volume, member }, m.generation)
        if (m.self) continue
        if (m.seq !== null && m.watermark !== null) g('replicant_member_sequence_lag', { volume, member }, Math.max(0, m.seq - m.watermark))
        if (m.behind !== null) {
          g('replicant_member_behind_changes', { volume, member }, m.behind.changes)
          g('replicant_member_behind_bytes', { volume, member }, m.behind.bytes)
        }
      }
      // Counted since start elsewhere (the store, the limits): moved up to their value here.
      const c = extras.localChanges(volume)
      this.catchUp('replicant_conflicts_total', { volume }, c.conflictCopy)
      for (const [cause, n] of Object.entries(c)) this.catchUp('replicant_local_changes_total', { volume, cause }, n)
    }
    this.catchUp('replicant_peer_requests_throttled_total', {}, extras.limits.refused)
    this.catchUp('replicant_peer_bans_total', {}, extras.limits.bans)
    this.catchUp('replicant_commit_groups_total', {}, extras.writes.groups)
    this.catchUp('replicant_grouped_commits_total', {}, extras.writes.groupedCommits)
    this.catchUp('replicant_put_batches_total', {}, extras.writes.putBatches)
    this.catchUp('replicant_batched_puts_total', {}, extras.writes.batchedPuts)
    return await this.exposition()
  }

  /**
   * The registry's text, with the Prometheus naming rule kept for third-party metrics too: a
   * gauge named `*_total` (prom-client's nodejs_active_handles_total and two siblings,
   * @libp2p/tcp's libp2p_tcp_inbound_connections_total) is renamed without the suffix, or left
   * out when a metric of that name exists already (nodejs_active_handles, the same by type);
   * a gauge in milliseconds (libp2p's ping times) is given in seconds (`inSeconds`).
   */
  private async exposition (): Promise<string> {
    const all = this.registry.getMetricsAsArray() as unknown as Array<{ name: string, type: string }>
    const names = new Set(all.map(m => m.name))
    const parts: string[] = []
    for (const m of all) {
      const text = await this.registry.getSingleMetricAsString(m.name)
      if (m.name.endsWith('_milliseconds')) {
        // Not the base unit: a gauge is given in seconds under a _seconds name, anything else left out.
        const seconds = `${m.name.slice(0, -'_milliseconds'.length)}_seconds`
        if (m.type === 'gauge' && !names.has(seconds)) parts.push(inSeconds(text, m.name, seconds))
        continue
      }
      const misnamed = m.name.endsWith('_total') && m.type !== 'counter'
      const plain = m.name.slice(0, -'_total'.length)
      if (misnamed && names.has(plain)) continue
      parts.push(misnamed ? text.split('\n').map(line => rename(line, m.name, plain)).join('\n') : text)
    }
    return `${parts.join('\n\n')}\n`
  }

  get contentType (): string { return this.registry.contentType }

  /** A counter kept as a plain number elsewhere: incremented by what it grew since the last scrape. */
  private catchUp (name: string, labels: Record<string, string>, value: number): void {
    const key = `${name}${JSON.stringify(labels)}`
    const last = this.lastSeen.get(key) ?? 0
    // inc by 0 still shows the series; a count that went down (a volume deleted and made again) leaves the counter as it was.
    this.scraped.get(name)!.inc(labels, Math.max(0, value - last))
    this.lastSeen.set(key, Math.max(last, value))
  }

  private readonly lastSeen = new Map<string, number>()
}

/**
 * A gauge's text in milliseconds as one in seconds named `to` (libp2p's
 * libp2p_connection_monitor_ping_time_milliseconds, whose first samples come with the first
 * ping, 10 s after a connection: promtool's lint fails on the unit). A series whose label value
 * names a variance is in ms², so it is divided by 10^6; the rest by 1000.
 */
function inSeconds (text: string, from: string, to: string): string {
  // Every mention: libp2p's metric groups name their label after the metric, and its help is the name.
  return text.split('\n').map(line => {
    const renamed = line.split(from).join(to)
    if (renamed.startsWith('#') || renamed === line) return renamed
    const m = /^(.*) (\S+)$/.exec(renamed)
    if (m === null) return renamed
    const value = Number(m[2]) / (/Variance"/.test(m[1]) ? 1e6 : 1e3)
    return `${m[1]} ${value}`
  }).join('\n').replace(/^(# HELP \S+ .*)$/m, '$1 (in seconds)')
}

/** `line` of a metric's text with the name `from` (a sample or its HELP/TYPE line) named `to`. */
function rename (line: string, from: string, to: string): string {
  for (const prefix of ['# HELP ', '# TYPE ', '']) {
    if (line.startsWith(prefix + from) && /^[{ ]/.test(line.slice(prefix.length + from.length))) return prefix + to + line.slice(prefix.length + from.length)
  }
  return line
}

type Spec = [name: string, help: string, labels: string[]]

/** Set at each scrape from the node's status. */
const GAUGES: Spec[] = [
  ['replicant_store_pack_bytes', 'Bytes of chunk pack files on disk', []],
  ['replicant_store_index_bytes', 'Bytes of the index database on disk', []],
  ['replicant_peers_connected', 'Peers connected now (members, joined peers, readers)', []],
  ['replicant_peers_known', 'Peers this node knows (connected or not)', []],
  ['replicant_peers_throttled', 'Peers refused for going past their limits in the last minute (not banned)', []],
  ['replicant_peers_banned', 'Peers banned now for going past their limits', []],
  ['replicant_uptime_seconds', 'Seconds since the node started', []],
  ['replicant_volume_generation', 'The volume generation this node holds', ['volume']],
  ['replicant_volume_seq', 'The head of this node\'s change log of the volume', ['volume']],
  ['replicant_volume_files', 'Live files of the volume here', ['volume']],
  ['replicant_volume_bytes', 'Bytes of the live files of the volume', ['volume']],
  ['replicant_volume_lacking_files', 'Files whose chunks this node still lacks', ['volume']],
  ['replicant_volume_lacking_bytes', 'Bytes this node still lacks', ['volume']],
  ['replicant_volume_damaged_chunks', 'Chunks found missing or corrupt by the last merge', ['volume']],
  ['replicant_volume_damaged_files', 'Live files that referenced a chunk the last merge found missing or corrupt', ['volume']],
  ['replicant_volume_repairing', '1 while an update that could not be applied is being repaired', ['volume']],
  ['replicant_all_mode_in_doubt', 'Prepared all-mode writes past expiry whose decision nobody reachable knows', ['volume']],
  ['replicant_copy_done_bytes', 'Bytes of a copy, merge or repair done (present while one runs)', ['volume']],
  ['replicant_copy_size_bytes', 'Bytes a copy, merge or repair has to hold in all', ['volume']],
  ['replicant_copy_done_files', 'Files of a copy done', ['volume']],
  ['replicant_copy_size_files', 'Files of a copy in all', ['volume']],
  ['replicant_copy_eta_seconds', 'Estimated seconds until the copy ends, at the current rate', ['volume']],
  ['replicant_member_state', 'A member\'s state as this node knows it (1 for the current state)', ['volume', 'member', 'state']],
  ['replicant_member_connected', '1 when the member is connected to this node (this node: 1)', ['volume', 'member']],
  ['replicant_member_generation', 'The generation the member last reported', ['volume', 'member']],
  ['replicant_member_sequence_lag', 'Changes of the member\'s log this node has not applied yet (its head minus our watermark)', ['volume', 'member']],
  ['replicant_member_behind_changes', 'Changes of this node the member has not applied yet', ['volume', 'member']],
  ['replicant_member_behind_bytes', 'Bytes of this node\'s changes the member has not applied yet', ['volume', 'member']]
]

/** Counters whose count lives elsewhere (store, peer limits) and is read at each scrape. */
const SCRAPED_COUNTERS: Spec[] = [
  ['replicant_conflicts_total', 'Conflict copies this node made (the loser of concurrent writes kept under a .conflict- path)', ['volume']],
  ['replicant_local_changes_total', 'Changes this node committed, by cause (write, delete, remoteApply, resolution, conflictCopy, restore)', ['volume', 'cause']],
  ['replicant_peer_requests_throttled_total', 'Peer requests refused with THROTTLED', []],
  ['replicant_commit_groups_total', 'Synced index batches written by group commit (each holds one or more commits)', []],
  ['replicant_grouped_commits_total', 'Commits written in those batches (divided by the groups: commits per fsync)', []],
  ['replicant_put_batches_total', 'Batches of small HTTP PUTs written together (one chunk write and one commit each)', []],
  ['replicant_batched_puts_total', 'Small HTTP PUTs written in those batches', []],
  ['replicant_peer_bans_total', 'Bans imposed on peers for going past their limits', []]
]
