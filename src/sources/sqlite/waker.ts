/**
 * When the replicator looks at the wal-index next. Looking is cheap, but each wake of
 * a Node process costs about 0.15 ms of CPU here, so a fixed 5 ms poll is 3 % of a core
 * on an idle database. Instead the WAL file is watched (inotify): a write to it wakes
 * the loop at once (at most every FAST_MS), and a database nobody writes is looked at
 * every SLOW_MS — the safety net for a missed or unsupported event, and for the
 * replicator's own housekeeping. A transaction is published in the wal-index a moment
 * after its frames are written (after an fsync with synchronous=FULL), so a wake that
 * finds nothing new looks again a few times at FAST_MS.
 *
 * The time a transaction is stamped with is when it was seen: within a millisecond or
 * so of its commit when writes are sparse, within FAST_MS under a steady stream.
 */
import { watch, type FSWatcher } from 'node:fs';

const FAST_MS = 5;
const SLOW_MS = 25;
/** Looks after a write event that found nothing published yet. */
const RETRIES = 6;

export class Waker {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private resolve: (() => void) | undefined;
  private event = false;
  private byEvent = false;
  private retries = 0;
  private lastRun = 0;
  private onAbort: (() => void) | undefined;
  private signal: AbortSignal | undefined;

  constructor(walPath: string, private readonly fastMs = FAST_MS) {
    try {
      this.watcher = watch(walPath, { persistent: false }, () => this.written());
      this.watcher.on('error', () => this.unwatch());
    } catch {
      this.watcher = undefined; // no inotify (or out of watches): poll at the fast rate instead
    }
  }

  /** Resolves at the next look: soon after a write to the WAL, else after the slow interval. */
  wait(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      this.resolve = resolve;
      this.signal = signal;
      this.onAbort = () => this.fire();
      signal.addEventListener('abort', this.onAbort, { once: true });
      this.arm();
    });
  }

  /** After a look: whether it found anything new (a write event that found nothing is retried). */
  settle(changed: boolean): void {
    if (changed || !this.byEvent) {
      this.retries = 0;
    } else if (this.retries < RETRIES) {
      this.retries++;
      this.event = true;
    }
  }

  close(): void {
    clearTimeout(this.timer);
    this.unwatch();
    this.fire();
  }

  private written(): void {
    this.event = true;
    this.retries = 0;
    if (this.resolve) this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    const every = this.event ? this.fastMs : this.watcher ? SLOW_MS : this.fastMs;
    const due = this.lastRun + every;
    this.timer = setTimeout(() => this.fire(), Math.max(0, due - Date.now()));
  }

  private fire(): void {
    clearTimeout(this.timer);
    this.byEvent = this.event;
    this.event = false;
    this.lastRun = Date.now();
    if (this.onAbort) this.signal?.removeEventListener('abort', this.onAbort);
    this.onAbort = undefined;
    const r = this.resolve;
    this.resolve = undefined;
    r?.();
  }

  private unwatch(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }
}
