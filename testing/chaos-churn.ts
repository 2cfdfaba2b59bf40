/**
 * Churn check: once a schedule is steady, no member may keep taking new local seqs with no
 * writes, and each member's seq (its local changes over the whole run, restarts included)
 * stays within a small multiple of the writes tried. Issue 13: members that kept
 * re-resolving the same conflicts took ~1,250 seqs for 27 writes and never converged.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Topology } from './topology.js'
import type { Violation } from './history.js'
import type { LocalChanges } from '../api/types.js'

/** Per member: its seq, and its local changes by cause since it last started. */
export interface ChurnStats {
  /** Largest seq of any member. */
  maxSeq: number
  /** Writes tried (acknowledged, failed and unknown): what the seqs are weighed against. */
  writes: number
  members: Record<string, { seq: number, localChanges: LocalChanges }>
}

/** A member may take each write, a resolution and a copy per write, and some slack for order. */
export function churnBound (writes: number): number { return 4 * writes + 16 }

export async function checkChurn (topo: Topology, volume: string, writes: number, quietMs = 2000): Promise<{ stats: ChurnStats, violations: Violation[] }> {
  const read = async (): Promise<ChurnStats['members']> => {
    const out: ChurnStats['members'] = {}
    for (const n of topo.names()) {
      const info = await topo.client(n).volumeInfo(volume)
      out[n] = { seq: info.seq, localChanges: info.localChanges }
    }
    return out
  }
  const before = await read()
  await sleep(quietMs)
  const after = await read()
  const violations: Violation[] = []
  for (const [n, a] of Object.entries(after)) {
    const b = before[n]
    if (b !== undefined && a.seq !== b.seq) {
      violations.push({ kind: 'CHURN', message: `${n} took ${a.seq - b.seq} local changes in ${quietMs} ms after steady with no writes (changes since start ${JSON.stringify(b.localChanges)} -> ${JSON.stringify(a.localChanges)})` })
    }
    if (a.seq > churnBound(writes)) {
      violations.push({ kind: 'CHURN', message: `${n} took ${a.seq} local changes for ${writes} writes tried (bound ${churnBound(writes)}; since its last start ${JSON.stringify(a.localChanges)})` })
    }
  }
  return { stats: { maxSeq: Math.max(0, ...Object.values(after).map(m => m.seq)), writes, members: after }, violations }
}
