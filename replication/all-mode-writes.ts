import { randomBytes } from 'node:crypto'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { registerWriteHandler, sendPrepare, sendCommit, sendAbort, askStatus, type TxRef, type WireMeter } from '../protocols/write-protocol.js'
import { PREPARE_TIMEOUT_MS, PREPARED_EXPIRY_MS } from '../protocols/constants.js'
import { requestLocate } from '../protocols/control-protocol.js'
import { authorizeMember, memberAuthorizer } from './member-authorizer.js'
import type { RequestGate } from '../protocols/sources.js'
import { reconcileRecord, holdsChunks } from './reconcile.js'
import { ReplicantError, Codes } from '../core/errors.js'
import { chunkHashes, type FileRecord, type VolumeRecord } from '../core/records.js'
import { logger } from '../core/log.js'
import { crashPoint } from '../core/crash-points.js'
import type { Store, NewFileRecord, CommitContext, PreparedWrite } from '../store/store.js'
import type { PeerManager } from './peer-manager.js'
import type { ChunkFetcher } from './chunk-fetcher.js'

const log = logger('all-mode')

const EXPIRY_CHECK_MS = 1_000

/** Fault injection for tests and chaos runs (also from REPLICANT_FAULTS in the environment). */
export interface WriteFaults {
  /** The coordinator kills its own process after every member prepared, before deciding. */
  crashAfterPrepare?: boolean
  /** The coordinator kills its own process after recording its commit, before telling members. */
  crashAfterDecision?: boolean
  /** Chunks served to peers are replaced by random bytes (read by the chunk handler). */
  serveCorruptChunks?: boolean
}

export interface AllModeOptions {
  prepareTimeoutMs?: number
  preparedExpiryMs?: number
  faults?: WriteFaults
  /** Per-peer limits of the write handler (peer-limits.ts). */
  gate?: RequestGate
}

/**
 * Applies an incoming version of a file the way every member does (reconcile.ts). A record
 * taken as it is counts as the commit's cause (a write on the coordinator); conflicts as theirs.
 */
export async function applyIncoming (ctx: CommitContext, record: NewFileRecord, holds?: (rec: NewFileRecord) => Promise<boolean>): Promise<NewFileRecord[]> {
  const out: NewFileRecord[] = []
  for (const { record: r, cause } of await reconcileRecord(ctx.get, { ...record, seq: 0 }, holds)) {
    if (cause !== 'remoteApply') ctx.cause(r.path, cause)
    out.push(r)
  }
  return out
}

/**
 * Writes of volumes in `all` mode: acknowledged only once every member stored them durably.
 *
 * Coordinator (the member that received the write): it stores the chunks, then asks every
 * other member to `prepare` (fetch what it lacks from the coordinator, store record and chunks
 * durably but invisibly). If any member fails, is unreachable or does not answer within the
 * prepare timeout, it sends `abort` to those that prepared and the client gets an error naming
 * the members that failed. Otherwise it records its decision and commits locally in one synced
 * batch, then sends `commit` to every member, and only then acknowledges.
 *
 * Member: a member that prepared voted yes, and the coordinator may have committed and
 * acknowledged since; so it keeps its prepared copy until it learns the decision. A prepared
 * write nobody decides within the expiry is resolved by asking (cooperative termination): the
 * coordinator, then every other reachable member, for what they recorded. The first `commit`
 * or `abort` heard settles it here; while nobody knows, it stays prepared and is shown in
 * doubt (volume info `inDoubt`). The coordinator itself, finding its own write prepared and
 * undecided after a restart, aborts it: it crashed before deciding (its commit removes the
 * prepared record in the same batch), and only it decides. So a coordinator that crashed
 * before deciding answers `abort` once back, one that crashed after answers `commit`, and a
 * member that heard either tells the others: the resolution is the same on every member.
 */
export class AllModeWrites {
  private timer: NodeJS.Timeout | undefined
  private readonly prepareTimeoutMs: number
  /** Writes this node coordinates right now (their prepared copies never expire meanwhile). */
  private readonly inFlight = new Set<string>()
  private readonly preparedExpiryMs: number
  private readonly faults: WriteFaults
  private readonly gate: RequestGate | undefined
  /** Bytes the write handler took from its streams: a refused prepare's body is not among them. */
  readonly wireIn: WireMeter = { bytesRead: 0 }
  private resolving = false
  /** Prepared writes past their expiry whose decision nobody reachable knows, per volume. */
  private readonly doubts = new Map<string, Set<string>>()

  constructor (
    private readonly libp2p: Libp2p,
    private readonly store: Store,
    private readonly peers: PeerManager,
    private readonly fetcher: ChunkFetcher,
    private readonly signal: AbortSignal,
    opts: AllModeOptions = {}
  ) {
    this.prepareTimeoutMs = opts.prepareTimeoutMs ?? PREPARE_TIMEOUT_MS
    this.preparedExpiryMs = opts.preparedExpiryMs ?? PREPARED_EXPIRY_MS
    this.faults = opts.faults ?? {}
    this.gate = opts.gate
  }

  private get selfId (): string { return this.libp2p.peerId.toString() }

  async start (): Promise<void> {
    await registerWriteHandler(this.libp2p, {
      prepare: async (peer, volume, volumeId, txId, record, signal) => { await this.prepare(peer, volume, volumeId, txId, record, signal) },
      commit: async (peer, volume, volumeId, txId) => { await this.commit(peer, volume, volumeId, txId) },
      abort: async (peer, volume, volumeId, txId) => {
        await authorizeMember(this.store, volume, volumeId, peer)
        await this.store.recordAbort(volume, txId)
        this.settled(volume, txId)
      },
      status: async (peer, volume, volumeId, txId) => {
        await authorizeMember(this.store, volume, volumeId, peer)
        return await this.store.txState(volume, txId) ?? 'unknown'
      }
    }, memberAuthorizer(this.store), this.prepareTimeoutMs, this.wireIn, this.gate)
    this.timer = setInterval(() => { void this.resolveExpired() }, Math.min(EXPIRY_CHECK_MS, this.preparedExpiryMs))
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
  }

  /** Prepared writes of `volume` past their expiry whose decision is not known here yet. */
  inDoubt (volume: string): string[] {
    return [...this.doubts.get(volume) ?? []].sort()
  }

  private settled (volume: string, txId: string): void {
    const set = this.doubts.get(volume)
    set?.delete(txId)
    if (set?.size === 0) this.doubts.delete(volume)
  }

  private async reach (peer: string): Promise<void> {
    await this.peers.reach(peer, async (via, ps) => await requestLocate(this.libp2p, peerIdFromString(via), ps, AbortSignal.timeout(5_000)))
  }

  /** The coordinator's side of one write; returns the committed record. */
  async write (vol: VolumeRecord, record: NewFileRecord): Promise<FileRecord> {
    const tx: TxRef = { volume: vol.name, volumeId: vol.id, txId: randomBytes(16).toString('hex') }
    // Our own prepared copy is not "expired" while we are still deciding (a prepare timeout set
    // longer than the expiry once made it abort itself mid-write, and stop serving its chunks).
    this.inFlight.add(tx.txId)
    try {
      return await this.coordinate(vol, record, tx)
    } finally {
      this.inFlight.delete(tx.txId)
    }
  }

  private async coordinate (vol: VolumeRecord, record: NewFileRecord, tx: TxRef): Promise<FileRecord> {
    const others = vol.members.filter(m => m !== this.selfId)
    // Members not connected are dialled by the prepare itself; one that cannot be reached fails it.
    const blocked = others.filter(m => this.peers.blocked.has(m))
    if (blocked.length > 0) {
      throw new ReplicantError(Codes.WRITE_NOT_ACKNOWLEDGED, `write to '${vol.name}' in all mode refused: member(s) not reachable: ${blocked.join(', ')}`,
        { failed: blocked.map(peerId => ({ peerId, error: 'not reachable' })) })
    }
    const signal = AbortSignal.any([this.signal, AbortSignal.timeout(this.prepareTimeoutMs)])
    // The coordinator prepares too: members fetch the new chunks from it, and it serves only
    // chunks its index or a prepared write references.
    await this.store.putPrepared({ txId: tx.txId, volume: vol.name, coordinator: this.selfId, record, at: Date.now() })
    const results = await Promise.allSettled(others.map(async m => {
      if (!this.peers.isConnected(m)) await this.reach(m)
      await sendPrepare(this.libp2p, peerIdFromString(m), tx, record, signal)
    }))
    const failed = others.map((peerId, i) => ({ peerId, r: results[i] })).filter(x => x.r.status === 'rejected')
      .map(x => ({ peerId: x.peerId, error: ((x.r as PromiseRejectedResult).reason as Error)?.message ?? 'failed' }))
    if (failed.length > 0) {
      await this.store.recordAbort(vol.name, tx.txId)
      const prepared = others.filter((_, i) => results[i].status === 'fulfilled')
      await Promise.allSettled(prepared.map(async m => { await sendAbort(this.libp2p, peerIdFromString(m), tx, AbortSignal.timeout(10_000)) }))
      throw new ReplicantError(Codes.WRITE_NOT_ACKNOWLEDGED, `write to '${vol.name}' in all mode rolled back: member(s) failed: ${failed.map(f => `${f.peerId} (${f.error})`).join(', ')}`, { failed })
    }
    if (this.faults.crashAfterPrepare === true) process.kill(process.pid, 'SIGKILL')
    crashPoint('all-prepared')
    const applied = await this.store.commitFiles(vol.name, async (ctx) => {
      ctx.settleTx(tx.txId)
      return await applyIncoming(ctx, record, holdsChunks(this.store.chunks))
    }, record.deleted ? 'delete' : 'write')
    if (this.faults.crashAfterDecision === true) process.kill(process.pid, 'SIGKILL')
    crashPoint('all-decided')
    const commits = await Promise.allSettled(others.map(async m => { await sendCommit(this.libp2p, peerIdFromString(m), tx, AbortSignal.timeout(this.prepareTimeoutMs)) }))
    commits.forEach((r, i) => {
      // Decided: a member that missed the commit resolves it by asking, or by replication.
      if (r.status === 'rejected') log('commit of %s to %s not confirmed: %s', tx.txId, others[i], (r.reason as Error)?.message)
    })
    // A conflict with a concurrent write from another member also commits a conflict copy
    // under another path: the client is answered with the record at the path it wrote.
    return applied.find(r => r.path === record.path) ?? await this.store.getFile(vol.name, record.path) as FileRecord
  }

  private async prepare (peer: string, volume: string, volumeId: string, txId: string, record: NewFileRecord, signal: AbortSignal): Promise<void> {
    const vol = await authorizeMember(this.store, volume, volumeId, peer)
    if (await this.store.txState(vol.name, txId) !== undefined) throw new ReplicantError(Codes.TX_DECIDED, `transaction ${txId} was already decided`)
    if (!record.deleted) {
      const sources = [peer, ...vol.members.filter(m => m !== peer && m !== this.selfId && this.peers.isConnected(m))]
      await this.fetcher.fetch(vol, [...chunkHashes(record)], sources, { signal })
    }
    await this.store.putPrepared({ txId, volume: vol.name, coordinator: peer, record, at: Date.now() })
  }

  private async commit (peer: string, volume: string, volumeId: string, txId: string): Promise<void> {
    await authorizeMember(this.store, volume, volumeId, peer)
    await this.commitPrepared(volume, txId)
  }

  private async commitPrepared (volume: string, txId: string): Promise<void> {
    const p = await this.store.getPrepared(volume, txId)
    if (p === undefined) {
      const state = await this.store.txState(volume, txId)
      if (state === 'commit') return
      throw new ReplicantError(Codes.TX_UNKNOWN, `no prepared write ${txId} here${state === 'abort' ? ' (it was aborted)' : ''}`)
    }
    // The coordinator's own write counts as a write; a member applies another's.
    await this.store.commitFiles(volume, async (ctx) => {
      ctx.settleTx(txId)
      return await applyIncoming(ctx, p.record, holdsChunks(this.store.chunks))
    }, p.coordinator === this.selfId ? (p.record.deleted ? 'delete' : 'write') : 'remoteApply')
    this.settled(volume, txId)
  }

  /**
   * What was decided for a prepared write, as far as anyone reachable knows: the coordinator
   * first, then the other members (one that heard the commit or abort knows it too).
   */
  private async learnDecision (vol: VolumeRecord, p: PreparedWrite): Promise<'commit' | 'abort' | 'unknown'> {
    // Our own write, undecided: we crashed before deciding, and nobody else decides.
    if (p.coordinator === this.selfId) return await this.store.txState(p.volume, p.txId) ?? 'abort'
    const tx: TxRef = { volume: vol.name, volumeId: vol.id, txId: p.txId }
    const ask = async (peer: string): Promise<'commit' | 'abort' | 'unknown'> => {
      // Dialled if need be: after a partition nobody may have reconnected to it yet.
      if (!this.peers.isConnected(peer)) await this.reach(peer).catch(() => {})
      if (!this.peers.isConnected(peer)) return 'unknown'
      return await askStatus(this.libp2p, peerIdFromString(peer), tx, AbortSignal.timeout(5_000)).catch(() => 'unknown' as const)
    }
    const fromCoordinator = await ask(p.coordinator)
    if (fromCoordinator !== 'unknown') return fromCoordinator
    const others = vol.members.filter(m => m !== this.selfId && m !== p.coordinator)
    const answers = await Promise.all(others.map(ask))
    return answers.find(a => a !== 'unknown') ?? 'unknown'
  }

  /** Prepared writes past their expiry: settled as decided, or kept in doubt while nobody reachable knows. */
  private async resolveExpired (): Promise<void> {
    if (this.resolving || !this.store.isOpen) return
    this.resolving = true
    try {
      const now = Date.now()
      for (const p of await this.store.listPrepared()) {
        if (now - p.at < this.preparedExpiryMs || this.inFlight.has(p.txId)) continue
        const vol = await this.store.getVolume(p.volume)
        if (vol === undefined) { await this.store.deletePrepared(p.volume, p.txId); this.settled(p.volume, p.txId); continue }
        const decision = await this.learnDecision(vol, p)
        // Settled meanwhile by a commit or abort from the coordinator: nothing left to do.
        if (await this.store.getPrepared(p.volume, p.txId) === undefined) { this.settled(p.volume, p.txId); continue }
        if (decision === 'commit') {
          await this.commitPrepared(p.volume, p.txId)
          log('prepared write %s of %s: committed elsewhere; committed here', p.txId, p.volume)
        } else if (decision === 'abort') {
          await this.store.recordAbort(p.volume, p.txId)
          this.settled(p.volume, p.txId)
          log('prepared write %s of %s: aborted elsewhere; aborted here', p.txId, p.volume)
        } else {
          // We voted yes: the coordinator may have committed and acknowledged. Keep it.
          if (this.doubts.get(p.volume)?.has(p.txId) !== true) log('prepared write %s of %s expired, nobody reachable knows its decision: in doubt', p.txId, p.volume)
          this.doubts.set(p.volume, (this.doubts.get(p.volume) ?? new Set()).add(p.txId))
        }
      }
    } catch (err) {
      log('resolving prepared writes failed: %s', (err as Error).message)
    } finally {
      this.resolving = false
    }
  }
}
