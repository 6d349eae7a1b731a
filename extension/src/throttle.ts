// Coalesces bursts of changes into at most one flush per interval (the runs panel and the status bar).
// Pure: the timer functions are injectable, so tests drive it with a fake clock.

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class Throttle<K> {
  private readonly pending = new Set<K>();
  private handle: unknown;
  flushes = 0;

  constructor(private readonly flush: (keys: K[]) => void, private readonly intervalMs: number,
              private readonly timers: Timers = realTimers) {}

  /** Marks `key` changed; the flush happens at most `intervalMs` later, with every key marked meanwhile. */
  mark(key: K): void {
    this.pending.add(key);
    if (this.handle === undefined) this.handle = this.timers.setTimeout(() => this.run(), this.intervalMs);
  }

  /** Flushes now (e.g. when a view appears). */
  now(): void {
    if (this.handle !== undefined) { this.timers.clearTimeout(this.handle); this.handle = undefined; }
    this.run();
  }

  dispose(): void {
    if (this.handle !== undefined) this.timers.clearTimeout(this.handle);
    this.handle = undefined;
    this.pending.clear();
  }

  private run(): void {
    this.handle = undefined;
    const keys = [...this.pending];
    this.pending.clear();
    this.flushes++;
    this.flush(keys);
  }
}
