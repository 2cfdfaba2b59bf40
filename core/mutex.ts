/** A FIFO async mutex: one holder at a time, in call order. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve()

  async run<T> (fn: () => Promise<T>): Promise<T> {
    const prev = this.tail
    let release!: () => void
    this.tail = new Promise<void>(resolve => { release = resolve })
    try {
      await prev
      return await fn()
    } finally {
      release()
    }
  }
}
