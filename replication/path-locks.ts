/**
 * Serialises work per key (a volume and path): each run starts once the previous one for the
 * same key has settled. An all-mode write reads the current record, derives the next vector
 * from it and commits through prepare/commit on every member; two overlapping writes to one
 * path would otherwise both derive the same vector, and the second would be skipped as
 * "equal" while its client was told it was stored.
 */
export class PathLocks {
  private readonly tails = new Map<string, Promise<void>>()

  async run<T> (key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve()
    let release!: () => void
    const mine = new Promise<void>(resolve => { release = resolve })
    const tail = previous.then(async () => await mine)
    this.tails.set(key, tail)
    try {
      await previous
      return await fn()
    } finally {
      release()
      // The last in line removes the key, so the map holds only paths being written.
      if (this.tails.get(key) === tail) this.tails.delete(key)
    }
  }
}
