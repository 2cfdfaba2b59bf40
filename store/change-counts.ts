/**
 * Local changes per volume since this process opened the store, by cause: what made this node
 * take a new local seq. The volume's `seq` is the persistent total; these say why it grew, so a
 * checker can tell replication churn (members re-resolving the same files) from writes.
 */
export const CHANGE_CAUSES = ['write', 'delete', 'remoteApply', 'resolution', 'conflictCopy', 'restore'] as const

/**
 * - write, delete: a client's put or delete on this node (an all-mode coordinator's too);
 * - remoteApply: a member's newer record taken as it is (a pull, or an all-mode commit);
 * - resolution: the winner of a conflict written at its path (merged vector);
 * - conflictCopy: the loser of a conflict kept under its conflict-copy path;
 * - restore: a record written by a dump restore.
 */
export type ChangeCause = typeof CHANGE_CAUSES[number]

export type LocalChanges = Record<ChangeCause, number>

export function noChanges (): LocalChanges {
  return { write: 0, delete: 0, remoteApply: 0, resolution: 0, conflictCopy: 0, restore: 0 }
}

/** Counters per volume, in memory (a volume deleted here starts again from zero). */
export class ChangeCounts {
  private readonly byVolume = new Map<string, LocalChanges>()

  add (volume: string, cause: ChangeCause, n = 1): void {
    const c = this.byVolume.get(volume) ?? noChanges()
    c[cause] += n
    this.byVolume.set(volume, c)
  }

  of (volume: string): LocalChanges {
    return { ...(this.byVolume.get(volume) ?? noChanges()) }
  }

  forget (volume: string): void { this.byVolume.delete(volume) }
}
