/**
 * What a chaos schedule watches besides the history: each node's memory (RSS sampled from
 * /proc while it runs, so a node that grows without bound shows, even across restarts) and
 * change churn (local change-log sequence numbers used per acknowledged write).
 */
import { readFile } from 'node:fs/promises'
import type { TopologyNode } from './topology-types.js'

/** kB fields of /proc/PID/status (Linux); undefined elsewhere or once the process is gone. */
async function procStatus (pid: number): Promise<{ rss: number, peak: number } | undefined> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined)
  if (text === undefined) return undefined
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024
  return { rss: kb('VmRSS'), peak: kb('VmHWM') }
}

/** Samples every running node's peak RSS every `everyMs` until stop(); keeps the max per node name. */
export class RssSampler {
  readonly max = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined
  private busy = false

  constructor (private readonly nodes: () => TopologyNode[], everyMs = 500) {
    this.timer = setInterval(() => { void this.sample() }, everyMs)
    this.timer.unref()
  }

  async sample (): Promise<void> {
    if (this.busy) return
    this.busy = true
    try {
      for (const n of this.nodes()) {
        if (!n.running || n.pid === undefined) continue
        const s = await procStatus(n.pid)
        if (s !== undefined) this.max.set(n.name, Math.max(this.max.get(n.name) ?? 0, s.peak, s.rss))
      }
    } finally { this.busy = false }
  }

  async stop (): Promise<Map<string, number>> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.sample()
    return this.max
  }
}

/** Per member of a volume: local change-log head vs acknowledged writes of the volume. */
export interface Churn { node: string, volume: string, seq: number, acked: number, ratio: number }

export async function churnOf (nodes: TopologyNode[], volume: string, acked: number): Promise<Churn[]> {
  const out: Churn[] = []
  for (const n of nodes) {
    if (!n.running) continue
    const info = await n.client.volumeInfo(volume).catch(() => undefined)
    const self = info?.memberStates.find(m => m.self)
    const seq = self?.seq ?? info?.seq
    if (typeof seq !== 'number') continue
    out.push({ node: n.name, volume, seq, acked, ratio: acked > 0 ? seq / acked : seq })
  }
  return out
}
