/** What an operator is asked before a full copy onto this node (`start --confirm-copy`). */
export interface CopyOffer {
  volume: string
  volumeId: string
  peer: string
  files: number | null
  bytes: number | null
  why: string
}

/** Answers whether a full copy may run; `--no-copy` answers no, `--confirm-copy` asks. */
export type CopyApproval = (offer: CopyOffer) => Promise<boolean>

import type { AcceptanceOptions } from './volume-acceptance.js'
import type { VolumeRecord } from '../core/records.js'

export interface MembershipOptions extends AcceptanceOptions {
  graceMs?: number
  approveCopy?: CopyApproval
  /** Volumes (or all, with true) whose foreign local replica may be discarded and recopied. */
  discardLocal?: boolean | string[]
  /** Where operator-facing lines go (what --discard-local deletes, refusals); the CLI prints them. */
  report?: (line: string) => void
  /** Peers the operator named with --join at this start: trusted like members for --discard-local. */
  trusted?: string[]
  /** How long a promise of a generation lives before it is in doubt (default 30 s; tests shorten it). */
  promiseMs?: number
  /** Testing only: runs after a change is committed here and before it is announced (a fault can cut the node off there). */
  afterCommit?: (vol: VolumeRecord) => Promise<void>
}
