/**
 * What replication reports for metrics, as one small sink passed down (node/metrics.ts
 * implements it with prom-client). Every call is cheap and synchronous; labels are a volume
 * and a source or peer, never a file or a chunk (bounded series).
 */
export type TransferSource = 'pull' | 'copy' | 'on-demand'
/**
 * What chunks were served for, as the holder sees it: `on-demand` for want-lists a reader waits
 * on (flagged `p: 1`), `bulk` for the rest (a pull or a background copy: the holder cannot tell them apart).
 */
export type ServedSource = 'on-demand' | 'bulk'

export interface TransferSink {
  /** One verified chunk received for `volume`, fetched for `source`. */
  received: (volume: string, source: TransferSource, bytes: number) => void
  /** Chunks served to a member or reader (one reply frame), by what they were wanted for. */
  sent: (volume: string, source: ServedSource, bytes: number, chunks: number) => void
  /** One chunk fetched for a reader (a wannabe's read), with how long it took and whether it came. */
  onDemandRead: (volume: string, seconds: number, ok: boolean) => void
}
