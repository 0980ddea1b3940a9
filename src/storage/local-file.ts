/**
 * A LocalFile (store.ts) opened for an upload that must not hold it in memory (the
 * S3 and Azure stores' putFile): opened once, without following a symlink, and
 * checked to be a regular file of exactly the declared size; then hashed in one
 * sequential pass (the digests a request must carry before its body) and sent as
 * ranges, each attempt of a request reading its range again through a new stream
 * from the same descriptor (a stream can be consumed only once).
 */
import { createHash } from 'node:crypto';
import { constants as fsc, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { LifeboatError } from '../errors.js';
import type { LocalFile } from './store.js';

/**
 * Bytes read at a time. A range stream holds at most two of these (one buffered,
 * one being read), so a part in flight costs ~0.5 MiB whatever its size, plus what
 * the socket buffers; the hashing pass reuses one buffer of HASH_CHUNK.
 */
const CHUNK = 256 * 1024;
const HASH_CHUNK = 1024 * 1024;

/**
 * Opens `file` without following a symlink (and without blocking on a FIFO) and
 * checks it is a regular file of exactly `file.size` bytes; FAILED otherwise.
 */
export async function openChecked(file: LocalFile, max = Number.MAX_SAFE_INTEGER): Promise<FileHandle> {
  if (!Number.isSafeInteger(file.size) || file.size < 0 || file.size > max) {
    throw new LifeboatError('FAILED', `${file.path}: size ${file.size} out of range for an object`);
  }
  const fh = await fs.open(file.path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size !== file.size) {
      throw new LifeboatError('FAILED', `${file.path}: not the ${file.size}-byte file that was written (${st.isFile() ? `${st.size} bytes` : 'not a regular file'})`);
    }
  } catch (err) {
    await fh.close();
    throw err;
  }
  return fh;
}

export class OpenedFile {
  /** The first failure reading the file while a range was being sent (the request was aborted for it). */
  failure: unknown;
  private readonly streams = new Set<Readable>();
  private closed = false;

  private constructor(
    readonly path: string,
    readonly size: number,
    private readonly fh: FileHandle,
  ) {}

  /** Opens `file` without following a symlink; FAILED unless it is a regular file of exactly `file.size` bytes. */
  static async open(file: LocalFile): Promise<OpenedFile> {
    const fh = await openChecked(file);
    return new OpenedFile(file.path, file.size, fh);
  }

  /**
   * MD5 of the whole file and of each `partSize` piece of it (the last one shorter),
   * read once from start to end.
   */
  async md5s(partSize: number): Promise<{ whole: Buffer; parts: Buffer[] }> {
    const buf = Buffer.allocUnsafe(Math.min(HASH_CHUNK, Math.max(1, this.size)));
    const whole = createHash('md5');
    const parts: Buffer[] = [];
    for (let start = 0; start < this.size || (start === 0 && parts.length === 0); start += partSize) {
      const end = Math.min(this.size, start + partSize);
      const part = createHash('md5');
      for (let pos = start; pos < end; ) {
        const { bytesRead } = await this.fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
        if (bytesRead === 0) throw this.short();
        const got = buf.subarray(0, bytesRead);
        whole.update(got);
        part.update(got);
        pos += bytesRead;
      }
      parts.push(part.digest());
    }
    return { whole: whole.digest(), parts };
  }

  /**
   * A new stream of the `length` bytes at `offset`. It fails if the file ends early;
   * a read failure is kept in `failure` and `abort` is told, so the request sending
   * the stream stops instead of waiting for bytes that will not come.
   */
  range(offset: number, length: number, abort: AbortController): Readable {
    const stream = new RangeStream(this.fh, offset, length, () => this.short());
    stream.on('error', (err) => {
      this.failure ??= err;
      abort.abort(err);
    });
    if (this.closed) {
      stream.destroy(new LifeboatError('FAILED', `${this.path}: read after the upload ended`));
      return stream;
    }
    this.streams.add(stream);
    stream.once('close', () => this.streams.delete(stream));
    return stream;
  }

  /** Ends the streams still open, waits until none is reading, then closes the file. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      [...this.streams].map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.closed) return resolve();
            s.once('close', () => resolve());
            s.destroy();
          }),
      ),
    );
    await this.fh.close();
  }

  private short(): LifeboatError {
    return new LifeboatError('FAILED', `${this.path}: shorter than the ${this.size} bytes written`);
  }
}

/** `length` bytes from `offset` of an open file, read with positioned reads (so many may share one descriptor). */
class RangeStream extends Readable {
  private pos: number;
  private readonly end: number;
  /** The read under way, settled (never rejecting) once its bytes are pushed or its failure raised. */
  private reading: Promise<void> | undefined;

  constructor(
    private readonly fh: FileHandle,
    offset: number,
    length: number,
    private readonly short: () => Error,
  ) {
    super({ highWaterMark: CHUNK });
    this.pos = offset;
    this.end = offset + length;
  }

  override _read(): void {
    const n = Math.min(CHUNK, this.end - this.pos);
    if (n === 0) {
      this.push(null);
      return;
    }
    const buf = Buffer.allocUnsafe(n);
    this.reading = this.fh.read(buf, 0, n, this.pos).then(
      ({ bytesRead }) => {
        this.reading = undefined;
        if (this.destroyed) return;
        if (bytesRead === 0) {
          this.destroy(this.short());
          return;
        }
        this.pos += bytesRead;
        this.push(bytesRead === n ? buf : buf.subarray(0, bytesRead));
      },
      (err: unknown) => {
        this.reading = undefined;
        this.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  // A positioned read still running when the stream is destroyed is waited for, so
  // the descriptor is never closed under it.
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const pending = this.reading;
    if (pending) pending.then(() => cb(err));
    else cb(err);
  }
}
