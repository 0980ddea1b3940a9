/**
 * Reads the API answers by opening a repository (snapshot listings, retention
 * previews). Each costs a child process that derives the key (scrypt) and decrypts
 * every snapshot, so a few viewers refreshing a page must not start hundreds: per
 * repository at most one such child runs at a time, identical requests share the
 * one in flight or queued, results are kept for a short while and dropped when a
 * job that writes the repository finishes, and beyond a bounded number of waiting
 * requests the API answers 429 with Retry-After.
 */
import { LifeboatError } from '../errors.js';

export interface ReadsOptions {
  /** How long a result is served from memory; a finished writing job drops it sooner. */
  ttlMs?: number;
  /** Requests that may wait per repository (sharing a result counts) before 429. */
  maxWaiting?: number;
}

/**
 * 10 s: long enough that a dashboard polled by many viewers costs one child per
 * repository per 10 s, short enough that a backup by the CLI (which the daemon does
 * not see finish) shows up at the next refresh but one.
 */
export const DEFAULT_READ_TTL_MS = 10_000;
/** Enough for every viewer of a busy dashboard; a flood beyond it is told to come back. */
export const DEFAULT_MAX_WAITING = 64;
/** What Retry-After says: about one child's run. */
const RETRY_AFTER_SECONDS = 5;

interface Pending {
  promise: Promise<unknown>;
  waiters: number;
}

interface RepoState {
  /** The chain every child of this repository runs on, one after the other. */
  tail: Promise<unknown>;
  /** Requests in flight or queued, by key: later identical requests join them. */
  pending: Map<string, Pending>;
  cached: Map<string, { value: unknown; at: number }>;
  /** Bumped by invalidate: a result computed across a bump is not cached. */
  generation: number;
  waiting: number;
}

export class RepositoryReads {
  private readonly repos = new Map<string, RepoState>();
  private readonly ttlMs: number;
  private readonly maxWaiting: number;
  /** Children started, by repository (the daemon's metric and tests read it). */
  readonly started = new Map<string, number>();

  constructor(
    private readonly run: (repository: string, args: string[]) => Promise<unknown>,
    opts: ReadsOptions = {},
    private readonly now: () => number = Date.now,
    private readonly onStart: (repository: string) => void = () => {},
  ) {
    this.ttlMs = opts.ttlMs ?? DEFAULT_READ_TTL_MS;
    this.maxWaiting = opts.maxWaiting ?? DEFAULT_MAX_WAITING;
  }

  private state(repository: string): RepoState {
    let s = this.repos.get(repository);
    if (!s) this.repos.set(repository, (s = { tail: Promise.resolve(), pending: new Map(), cached: new Map(), generation: 0, waiting: 0 }));
    return s;
  }

  /**
   * `lifeboat ARGS` against the repository, shared and cached as above. `fresh`
   * skips the cache (a catalog rebuild) but still waits its turn.
   */
  async get(repository: string, args: string[], opts: { fresh?: boolean } = {}): Promise<unknown> {
    const s = this.state(repository);
    const key = JSON.stringify(args);
    const hit = s.cached.get(key);
    if (!opts.fresh && hit && this.now() - hit.at < this.ttlMs) return hit.value;
    if (s.waiting >= this.maxWaiting) {
      throw new LifeboatError('BUSY', `${s.waiting} requests already wait for repository ${repository}`, { hint: `retry in ${RETRY_AFTER_SECONDS} s (Retry-After)` });
    }
    let p = opts.fresh ? undefined : s.pending.get(key);
    if (!p) {
      const generation = s.generation;
      const promise = s.tail.then(async () => {
        this.started.set(repository, (this.started.get(repository) ?? 0) + 1);
        this.onStart(repository);
        return this.run(repository, args);
      });
      const entry: Pending = { promise, waiters: 0 };
      p = entry;
      if (!opts.fresh) s.pending.set(key, entry);
      // The next child of this repository starts when this one ends, however it ends.
      s.tail = promise.catch(() => undefined);
      promise.then(
        (value) => {
          if (s.pending.get(key) === entry) s.pending.delete(key);
          if (s.generation === generation) s.cached.set(key, { value, at: this.now() });
        },
        () => {
          if (s.pending.get(key) === entry) s.pending.delete(key);
        },
      );
    }
    s.waiting++;
    p.waiters++;
    try {
      return await p.promise;
    } finally {
      s.waiting--;
    }
  }

  /** A job that writes the repository finished: what was read before is stale. */
  invalidate(repository: string): void {
    const s = this.state(repository);
    s.generation++;
    s.cached.clear();
    // Requests still queued would read after the write anyway; one in flight may not have.
    s.pending.clear();
  }

  static readonly retryAfterSeconds = RETRY_AFTER_SECONDS;
}
