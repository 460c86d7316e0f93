// A bound on concurrent Temporal calls, shared by everything in the client layer that fans out.

export class Pool {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {}

  /** Runs fn once a slot is free; one pool can cap concurrent requests of a whole process. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    // A freed slot passes straight to the first waiter (the count stays), so a caller arriving while
    // that waiter wakes cannot take it too.
    if (this.active >= this.size) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  /**
   * Calls fn for every item, at most `concurrency` of this list at a time (each through the pool),
   * and resolves with the results in item order. After a call throws no further item starts, and it
   * rejects with that first error once the calls under way have settled.
   */
  async map<T, R>(items: readonly T[], fn: (item: T) => Promise<R>, concurrency = this.size): Promise<R[]> {
    const out: R[] = new Array(items.length);
    let next = 0;
    const failures: unknown[] = [];
    const lane = async () => {
      while (next < items.length && failures.length === 0) {
        const i = next++;
        try {
          out[i] = await this.run(() => fn(items[i]));
        } catch (error) {
          failures.push(error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
    if (failures.length) throw failures[0];
    return out;
  }
}
