/**
 * Bandwidth limits, so a nightly backup over the office uplink leaves room for
 * everyone else (restic's --limit-upload/--limit-download, kopia's throttler). Uploads
 * (put bytes) and downloads (get bytes) each draw from a token bucket shared by every
 * concurrent call on this store, so eight parallel pack uploads together stay under
 * the limit instead of each getting it.
 *
 * A Store call moves a whole object at once, so the limit holds on average rather
 * than per packet: a put waits until its bytes are paid for and then sends them, and
 * a get pays for what it received before returning it, which delays the next read.
 */
import { Transform, type Readable } from 'node:stream';
import { putFile, type ByteRange, type GetOptions, type LocalFile, type ObjectInfo, type PutOptions, type StatOptions, type Store } from '../store.js';
import { objectAccessOf, type ObjectAccess } from '../objects.js';

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export interface ThrottleOptions {
  /** Bytes per second for put; 0 or undefined means unlimited. */
  upload?: number;
  /** Bytes per second for get; 0 or undefined means unlimited. */
  download?: number;
  clock?: Clock;
}

const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise<void>((resolve) => setTimeout(resolve, ms)),
};

/**
 * Holds at most one second of the rate: after an idle spell a transfer may burst
 * for ~1 s, never more. Takes are served first come, first served, so a large
 * object is not starved by a stream of small ones.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly bytesPerSecond: number,
    private readonly clock: Clock = realClock,
  ) {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) {
      throw new RangeError(`bandwidth limit must be a positive number of bytes per second, not ${bytesPerSecond}`);
    }
    this.tokens = bytesPerSecond;
    this.last = clock.now();
  }

  /** Resolves once `bytes` may pass. Never rejects; 0 bytes passes at once when no one is queued. */
  take(bytes: number): Promise<void> {
    const turn = this.queue.then(() => this.pay(bytes));
    this.queue = turn;
    return turn;
  }

  // Charged piece by piece, each at most the bucket's size, so an object larger than
  // the bucket still passes, and waits in proportion to its size.
  private async pay(bytes: number): Promise<void> {
    let owed = bytes;
    while (owed > 0) {
      this.refill();
      const piece = Math.min(owed, this.bytesPerSecond);
      if (this.tokens >= piece) {
        this.tokens -= piece;
        owed -= piece;
      } else {
        await this.clock.sleep(Math.ceil(((piece - this.tokens) * 1000) / this.bytesPerSecond));
      }
    }
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.bytesPerSecond, this.tokens + ((now - this.last) * this.bytesPerSecond) / 1000);
    this.last = now;
  }
}

export class ThrottleStore implements Store {
  readonly location: string;
  private readonly up: TokenBucket | undefined;
  private readonly down: TokenBucket | undefined;
  /** The inner store's object access (../objects.ts), its bodies paced by the same buckets. */
  readonly objects?: ObjectAccess;

  constructor(
    private readonly inner: Store,
    opts: ThrottleOptions = {},
  ) {
    this.location = inner.location;
    this.up = opts.upload ? new TokenBucket(opts.upload, opts.clock) : undefined;
    this.down = opts.download ? new TokenBucket(opts.download, opts.clock) : undefined;
    const o = objectAccessOf(inner);
    if (o) {
      this.objects = {
        probe: () => o.probe(),
        listObjects: (prefix) => o.listObjects(prefix),
        openObject: async (key) => {
          const opened = await o.openObject(key);
          return { ...opened, body: paced(opened.body, this.down) };
        },
        putObject: (key, body, size, meta) => o.putObject(key, () => paced(body(), this.up), size, meta),
        versioned: () => o.versioned(),
      };
    }
  }

  /** Waits for upload budget, then puts. Bytes of a failed put stay spent: they were likely sent. */
  async put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void> {
    await this.up?.take(data.length);
    await this.inner.put(key, data, opts);
  }

  /** As put: the file's size is paid for first. */
  async putFile(key: string, file: LocalFile, opts?: PutOptions): Promise<void> {
    await this.up?.take(file.size);
    await putFile(this.inner, key, file, opts);
  }

  async stagingDir(): Promise<string | undefined> {
    return this.inner.stagingDir?.();
  }

  /** Gets, then waits for download budget for the bytes received before returning them. */
  async get(key: string, range?: ByteRange, opts?: GetOptions): Promise<Uint8Array> {
    const data = await this.inner.get(key, range, opts);
    await this.down?.take(data.length);
    return data;
  }

  /** Metadata calls are not charged: their size is negligible next to object bodies. */
  stat(key: string, opts?: StatOptions): Promise<ObjectInfo | undefined> {
    return this.inner.stat(key, opts);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A stream's pieces, each let through once the bucket has paid for it (streams, unlike puts and gets, are paced as they flow). */
function paced(body: Readable, bucket: TokenBucket | undefined): Readable {
  if (!bucket) return body;
  const out = new Transform({
    transform(piece: Buffer, _enc, done) {
      bucket.take(piece.length).then(() => done(null, piece), done);
    },
  });
  body.on('error', (err) => out.destroy(err));
  out.on('close', () => {
    if (!body.readableEnded) body.destroy();
  });
  return body.pipe(out);
}
