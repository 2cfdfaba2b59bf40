/**
 * What replication reports for metrics, as one small sink passed down (node/metrics.ts
 * implements it with prom-client). Every call is cheap and synchronous; labels are a volume
 * and a source or peer, never a file or a chunk (bounded series).
 */
export type TransferSource = 'pull' | 'copy' | 'on-demand'

export interface TransferSink {
  /** One verified chunk received for `volume`, fetched for `source`. */
  received: (volume: string, source: TransferSource, bytes: number) => void
  /** Chunks served to a member or reader (one reply frame). */
  sent: (volume: string, bytes: number, chunks: number) => void
  /** One chunk fetched for a reader (a wannabe's read), with how long it took and whether it came. */
  onDemandRead: (volume: string, seconds: number, ok: boolean) => void
}
