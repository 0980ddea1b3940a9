/**
 * Retries transient store failures so a throttled request, a reset connection or a
 * brief outage does not fail a backup that has been running for an hour (restic's
 * backend/retry, kopia's retrying storage). Only STORE_UNAVAILABLE is retried: every
 * other code is a fact about the data or the account, and asking again cannot change it.
 *
 * Reads are also retried when what came back is wrong: a ranged read of the wrong
 * length, or bytes the caller's `verify` rejects. A truncated whole-object read can
 * only be caught by `verify`; callers that need that protection must pass one.
 */
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { holdsBytes, holdsFile, putFile, type ByteRange, type GetOptions, type LocalFile, type ObjectInfo, type PutOptions, type StatOptions, type Store } from '../store.js';
import { objectAccessOf, type ListedObject, type ObjectAccess } from '../objects.js';

export type RetryOp = 'put' | 'get' | 'stat' | 'list' | 'delete';

export interface RetryEvent {
  op: RetryOp;
  key: string;
  /** The attempt that just failed, counting from 1. */
  attempt: number;
  delayMs: number;
  error: unknown;
}

export interface RetryOptions {
  attempts?: number;
  baseMs?: number;
  capMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Uniform in [0, 1); injected so tests can fix the jitter. */
  random?: () => number;
  /** Called once before each retry, after the delay is chosen (for logging and progress). */
  onRetry?: (event: RetryEvent) => void;
}

// Six attempts 200 ms apart, doubling, is up to ~6 s of waiting (3 s on average with
// jitter): enough to ride out throttling or a dropped connection, short enough that
// a real outage is reported while the operator can still act on it. The 5 s cap keeps
// a larger `attempts` from growing into minutes between tries.
const DEFAULTS = { attempts: 6, baseMs: 200, capMs: 5_000 };

const sleepFor = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function unavailable(message: string): LifeboatError {
  return new LifeboatError('STORE_UNAVAILABLE', message);
}

export class RetryStore implements Store {
  readonly location: string;
  private readonly attempts: number;
  private readonly baseMs: number;
  private readonly capMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly onRetry: ((event: RetryEvent) => void) | undefined;
  /** The inner store's object access (../objects.ts), retried the same way; absent when it has none. */
  readonly objects?: ObjectAccess;

  constructor(private readonly inner: Store, opts: RetryOptions = {}) {
    this.location = inner.location;
    this.attempts = Math.max(1, opts.attempts ?? DEFAULTS.attempts);
    this.baseMs = opts.baseMs ?? DEFAULTS.baseMs;
    this.capMs = opts.capMs ?? DEFAULTS.capMs;
    this.sleep = opts.sleep ?? sleepFor;
    this.random = opts.random ?? Math.random;
    this.onRetry = opts.onRetry;
    const objects = objectAccessOf(inner);
    if (objects) this.objects = this.retriedObjects(objects);
  }

  /**
   * Opening an object and writing one (its body is a factory, read again for each
   * attempt) are retried like get and put; a listing like list, until its first item.
   * A body that breaks off after it was opened is the reader's to retry.
   */
  private retriedObjects(o: ObjectAccess): ObjectAccess {
    const self = this;
    return {
      probe: () => this.run('stat', '', () => o.probe()),
      async *listObjects(prefix: string): AsyncIterable<ListedObject> {
        for (let attempt = 1; ; attempt++) {
          let yielded = false;
          try {
            for await (const info of o.listObjects(prefix)) {
              yielded = true;
              yield info;
            }
            return;
          } catch (err) {
            if (yielded) throw err;
            await self.beforeRetry('list', prefix, attempt, err);
          }
        }
      },
      openObject: (key) => this.run('get', key, () => o.openObject(key)),
      putObject: (key, body, size, meta) => this.run('put', key, () => o.putObject(key, body, size, meta)),
      versioned: () => o.versioned(),
    };
  }

  /**
   * Safe to repeat: a plain put is idempotent, and a create-only put that meets
   * ALREADY_EXISTS after one of its own attempts failed transiently (that attempt may
   * have landed) reads the object back: the same bytes mean it did land, and the put
   * succeeds; different bytes mean someone else wrote it, and ALREADY_EXISTS stands.
   */
  async put(key: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    let mayHaveLanded = false;
    await this.run('put', key, async () => {
      try {
        await this.inner.put(key, data, opts);
      } catch (err) {
        if (mayHaveLanded && isLifeboatError(err, 'ALREADY_EXISTS') && (await holdsBytes(this.inner, key, data))) return;
        if (isLifeboatError(err, 'STORE_UNAVAILABLE')) mayHaveLanded = true;
        throw err;
      }
    });
  }

  /** `put` for a file, retried the same way (the file is read again by each attempt that needs it). */
  async putFile(key: string, file: LocalFile, opts: PutOptions = {}): Promise<void> {
    let mayHaveLanded = false;
    await this.run('put', key, async () => {
      try {
        await putFile(this.inner, key, file, opts);
      } catch (err) {
        if (mayHaveLanded && isLifeboatError(err, 'ALREADY_EXISTS') && (await holdsFile(this.inner, key, file))) return;
        if (isLifeboatError(err, 'STORE_UNAVAILABLE')) mayHaveLanded = true;
        throw err;
      }
    });
  }

  async stagingDir(): Promise<string | undefined> {
    return this.inner.stagingDir?.();
  }

  /**
   * Reads again after a transient error, a ranged read of the wrong length, or bytes
   * `opts.verify` rejects (`verify` is passed down too, for wrappers below). When every
   * attempt fails verification the last bytes are returned so the caller can report
   * the damage; when the last attempt failed with an error, that error is raised.
   */
  async get(key: string, range?: ByteRange, opts: GetOptions = {}): Promise<Uint8Array> {
    const last: { rejected: Uint8Array | undefined } = { rejected: undefined };
    try {
      return await this.run('get', key, async () => {
        last.rejected = undefined;
        const data = await this.inner.get(key, range, opts);
        if (range && data.length !== range.length) {
          throw unavailable(`${this.location}: ${key} returned ${data.length} of ${range.length} bytes asked for`);
        }
        if (opts.verify && !opts.verify(data)) {
          last.rejected = data;
          throw unavailable(`${this.location}: ${key} failed the reader's check`);
        }
        return data;
      });
    } catch (err) {
      if (last.rejected) return last.rejected;
      throw err;
    }
  }

  /** Retried like any read; undefined (missing) is an answer, not a failure. */
  async stat(key: string, opts?: StatOptions): Promise<ObjectInfo | undefined> {
    return this.run('stat', key, () => this.inner.stat(key, opts));
  }

  /**
   * Retries only until the first item is yielded: the inner listing has no resume
   * point, and starting over would hand the caller items it already has. A failure
   * after that is raised unchanged, and the caller decides whether to list again.
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for (let attempt = 1; ; attempt++) {
      let yielded = false;
      try {
        for await (const info of this.inner.list(prefix)) {
          yielded = true;
          yield info;
        }
        return;
      } catch (err) {
        if (yielded) throw err;
        await this.beforeRetry('list', prefix, attempt, err);
      }
    }
  }

  /** Idempotent inside, so retried freely. */
  async delete(key: string): Promise<void> {
    await this.run('delete', key, () => this.inner.delete(key));
  }

  async close(): Promise<void> {
    await this.inner.close();
  }

  private async run<T>(op: RetryOp, key: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        await this.beforeRetry(op, key, attempt, err);
      }
    }
  }

  /** Raises `err` when it is permanent or attempts are spent; otherwise waits out the backoff. */
  private async beforeRetry(op: RetryOp, key: string, attempt: number, err: unknown): Promise<void> {
    if (!isLifeboatError(err, 'STORE_UNAVAILABLE')) throw err;
    if (attempt >= this.attempts) {
      throw new LifeboatError('STORE_UNAVAILABLE', `${err.message} (gave up after ${attempt} attempts)`, {
        ...(err.hint === undefined ? {} : { hint: err.hint }),
        cause: err,
      });
    }
    // Full jitter (a uniform delay up to the exponential ceiling) spreads out clients
    // that failed together, so they do not return to a throttled service in step.
    const delayMs = this.random() * Math.min(this.capMs, this.baseMs * 2 ** (attempt - 1));
    this.onRetry?.({ op, key, attempt, delayMs, error: err });
    await this.sleep(delayMs);
  }

}
