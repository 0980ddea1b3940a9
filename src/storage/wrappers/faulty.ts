/**
 * Fault injection for tests: a store that fails the way clouds do (an error, a
 * request that hangs and times out, a body cut short) at a chosen rate, from a seeded
 * generator so a failing run can be replayed exactly (restic's test backends, kopia's
 * blobtesting faulty storage). Mutations may fail after they landed, as they do when
 * the response is lost on the way back: that is the case retry logic gets wrong.
 */
import { LifeboatError } from '../../errors.js';
import type { ByteRange, GetOptions, ObjectInfo, PutOptions, StatOptions, Store } from '../store.js';

export type FaultKind = 'error' | 'timeout' | 'truncate';

export interface FaultOptions {
  /** Probability in [0, 1] that a call fails. */
  rate: number;
  seed: number;
  /** Kinds to choose from, uniformly; 'truncate' applies to get only. Default: all. */
  kinds?: FaultKind[];
  /** How long an injected timeout hangs before failing; 50 ms keeps tests quick. */
  timeoutMs?: number;
}

/** mulberry32: tiny, fast, and good enough to pick faults; uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Op = 'put' | 'get' | 'stat' | 'list' | 'delete';

interface Fault {
  kind: FaultKind;
  /** For put and delete: fail after the inner call succeeded. */
  afterLanding: boolean;
  /** For truncate: the fraction of the bytes kept, in [0, 1). */
  keep: number;
}

export class FaultyStore implements Store {
  readonly location: string;
  /** Faults injected so far. */
  faults = 0;
  private readonly random: () => number;
  private readonly rate: number;
  private readonly kinds: readonly FaultKind[];
  private readonly timeoutMs: number;

  constructor(
    private readonly inner: Store,
    opts: FaultOptions,
  ) {
    this.location = inner.location;
    this.random = mulberry32(opts.seed);
    this.rate = opts.rate;
    this.kinds = opts.kinds ?? ['error', 'timeout', 'truncate'];
    this.timeoutMs = opts.timeoutMs ?? 50;
  }

  /** May fail before the inner put, or after it landed. */
  async put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void> {
    const fault = this.draw('put');
    if (fault && !fault.afterLanding) await this.fail(fault);
    await this.inner.put(key, data, opts);
    if (fault) await this.fail(fault);
  }

  /** May fail, or return a strict prefix of the object's bytes (when it has any). */
  async get(key: string, range?: ByteRange, opts?: GetOptions): Promise<Uint8Array> {
    const fault = this.draw('get');
    if (fault && fault.kind !== 'truncate') await this.fail(fault);
    const data = await this.inner.get(key, range, opts);
    if (!fault || data.length === 0) return data;
    this.faults++;
    return data.slice(0, Math.floor(fault.keep * data.length));
  }

  async stat(key: string, opts?: StatOptions): Promise<ObjectInfo | undefined> {
    const fault = this.draw('stat');
    if (fault) await this.fail(fault);
    return this.inner.stat(key, opts);
  }

  /**
   * May fail before the first item only: RetryStore can restart a listing only then,
   * so a fault later would test the caller rather than the store stack.
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const fault = this.draw('list');
    if (fault) await this.fail(fault);
    yield* this.inner.list(prefix);
  }

  /** May fail before the inner delete, or after it landed. */
  async delete(key: string): Promise<void> {
    const fault = this.draw('delete');
    if (fault && !fault.afterLanding) await this.fail(fault);
    await this.inner.delete(key);
    if (fault) await this.fail(fault);
  }

  async close(): Promise<void> {
    await this.inner.close();
  }

  // Every random number a call needs is drawn when the call starts, so the sequence
  // depends only on the order of calls, not on how their awaits interleave.
  private draw(op: Op): Fault | undefined {
    const hit = this.random() < this.rate;
    const pick = this.random();
    const afterLanding = this.random() < 0.5;
    const keep = this.random();
    if (!hit) return undefined;
    const kinds = this.kinds.filter((k) => k !== 'truncate' || op === 'get');
    const kind = kinds[Math.floor(pick * kinds.length)];
    return kind === undefined ? undefined : { kind, afterLanding, keep };
  }

  private async fail(fault: Fault): Promise<never> {
    this.faults++;
    if (fault.kind === 'timeout') {
      await new Promise((resolve) => setTimeout(resolve, this.timeoutMs));
      throw new LifeboatError('STORE_UNAVAILABLE', `${this.location}: injected timeout`);
    }
    throw new LifeboatError('STORE_UNAVAILABLE', `${this.location}: injected fault`);
  }
}
