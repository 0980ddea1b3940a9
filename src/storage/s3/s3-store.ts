/**
 * S3 and S3-compatible object storage (AWS, MinIO, Ceph, R2, GCS interoperability)
 * through the AWS SDK v3.
 *
 * Locations: `s3:https://host[:port]/bucket/prefix` for any endpoint (path-style
 * addressing, which every compatible server accepts), `s3://bucket/prefix` for AWS.
 * Credentials and region come from the SDK's standard chain (AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance and container roles); AWS_REGION
 * defaults to us-east-1 and a bucket elsewhere is followed by redirect.
 *
 * Uploads carry a checksum the server checks, so it refuses bytes damaged on the way:
 * a single PutObject its Content-MD5; `put`'s parts the SDK's CRC32 and a signed
 * SHA-256 of their bytes; `putFile`'s parts, streamed from the file, their Content-MD5.
 * Objects over 8 MiB (packs) go up as multipart uploads with parts in parallel. The
 * SDK's own retries are kept to one extra attempt: backoff is the retry wrapper's
 * job, and it knows which failures are worth waiting for.
 */
import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  paginateListObjectsV2,
  type CompletedPart,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { LifeboatError, errno } from '../../errors.js';
import { OpenedFile } from '../local-file.js';
import { assertKey, emptyRangeRead, type ByteRange, type LocalFile, type ObjectInfo, type PutOptions, type Store } from '../store.js';
import { S3Objects } from './s3-objects.js';

/** Objects above this go up in parts: a 16 MiB pack is two 8 MiB parts sent at once. */
const MULTIPART_THRESHOLD = 8 << 20;
const PART_SIZE = 8 << 20;
/** Parts of one object in flight at once (lib-storage's queueSize in put). */
const PART_CONCURRENCY = 4;
/** Attempts of a request whose body streams from a file: the SDK's maxAttempts, done here (see streamClient). */
const STREAM_ATTEMPTS = 2;

export interface S3Location {
  endpoint?: string;
  bucket: string;
  prefix: string;
}

export function parseS3Location(rest: string, location: string): S3Location {
  const bad = () =>
    new LifeboatError('USAGE', `cannot read S3 location ${location}`, {
      hint: 'use s3:https://host[:port]/bucket/prefix for any endpoint, or s3://bucket/prefix for AWS',
    });
  if (rest.startsWith('//')) {
    const [bucket, ...prefix] = rest.slice(2).split('/');
    if (!bucket) throw bad();
    return { bucket, prefix: prefix.filter(Boolean).join('/') };
  }
  let url: URL;
  try {
    url = new URL(rest);
  } catch {
    throw bad();
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw bad();
  const [bucket, ...prefix] = url.pathname.split('/').filter(Boolean);
  if (!bucket) throw bad();
  return { endpoint: `${url.protocol}//${url.host}`, bucket, prefix: prefix.join('/') };
}

export class S3Store implements Store {
  readonly location: string;
  private readonly client: S3Client;
  /**
   * The same endpoint for requests whose body streams from a file (putFile). The SDK
   * never repeats a streamed request (it cannot read the stream again; it would
   * print a warning and fail), so this client makes one attempt and putFile repeats
   * with a new stream itself. Its checksums are only those asked for (WHEN_REQUIRED):
   * under the default, the SDK would wrap a stream in aws-chunked encoding with a
   * trailing CRC32, which S3-compatible servers (s3rver among them) do not all take;
   * each request carries the Content-MD5 computed from the file instead.
   */
  private readonly streamClient: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  /** Object access for a bucket source (../objects.ts), on this store's client. */
  readonly objects: S3Objects;

  constructor(loc: S3Location, location: string) {
    // The SDK warns on every run that releases after January 2027 need Node 22; the
    // lockfile pins a release that supports Node 20 (docs/dependencies.md).
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.location = location;
    this.bucket = loc.bucket;
    this.prefix = loc.prefix ? `${loc.prefix}/` : '';
    // Parallel transfers need more sockets than the SDK's default of 50 only rarely;
    // keep-alive matters more: a TLS handshake per 16 MiB pack would be waste.
    const agent = { keepAlive: true, maxSockets: 64 };
    const config: S3ClientConfig = {
      region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(loc.endpoint ? { endpoint: loc.endpoint, forcePathStyle: true } : {}),
      followRegionRedirects: true,
      maxAttempts: 2,
      requestHandler: {
        connectionTimeout: 10_000,
        requestTimeout: 120_000,
        // One pool of sockets for both clients.
        httpAgent: new HttpAgent(agent),
        httpsAgent: new HttpsAgent(agent),
      },
    };
    this.client = new S3Client(config);
    this.streamClient = new S3Client({ ...config, maxAttempts: 1, requestChecksumCalculation: 'WHEN_REQUIRED' });
    this.objects = new S3Objects(this.client, this.bucket, this.prefix, (err, doing, key) => this.error(err, doing, key), () => this.probe());
  }

  private key(key: string): string {
    assertKey(key);
    return this.prefix + key;
  }

  /** Fails with REPO_NOT_FOUND / PERMISSION / STORE_UNAVAILABLE before anything else is tried. */
  async probe(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      // A HEAD answer has no body, so a missing bucket is a bare 404 (no NoSuchBucket code).
      if (httpStatus(err) === 404) {
        throw new LifeboatError('REPO_NOT_FOUND', `${this.location}: open: bucket "${this.bucket}" does not exist`, {
          hint: 'create the bucket first (aws s3 mb, or the provider console), then `lifeboat init`',
          cause: err,
        });
      }
      throw this.error(err, 'open');
    }
  }

  /**
   * Durable when it resolves (S3 acknowledges only stored objects). With ifAbsent an
   * existing key raises ALREADY_EXISTS: checked with a HEAD, and enforced by the
   * server with If-None-Match where it supports conditional writes.
   */
  async put(key: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    const Key = this.key(key);
    if (opts.ifAbsent && (await this.stat(key))) {
      throw new LifeboatError('ALREADY_EXISTS', `${key} already exists in ${this.location}`);
    }
    const Body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    try {
      if (Body.length > MULTIPART_THRESHOLD) {
        await new Upload({ client: this.client, params: { Bucket: this.bucket, Key, Body }, partSize: PART_SIZE, queueSize: 4, leavePartsOnError: false }).done();
      } else {
        const ContentMD5 = createHash('md5').update(Body).digest('base64');
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body, ContentMD5, ...(opts.ifAbsent ? { IfNoneMatch: '*' } : {}) }));
      }
    } catch (err) {
      const status = httpStatus(err);
      if (opts.ifAbsent && (status === 412 || status === 409)) {
        throw new LifeboatError('ALREADY_EXISTS', `${key} already exists in ${this.location}`);
      }
      throw this.error(err, `put ${key}`);
    }
  }

  /**
   * `put` for a file, streamed from it: the same create-only check (a HEAD, and
   * If-None-Match on a single PutObject), the same threshold and part size, with a
   * Content-MD5 on every request (single put and each part) computed in a first pass
   * over the file, so the server refuses bytes that changed on the way or in the
   * file meanwhile. What is held is a few 256 KiB reads per part in flight (at most
   * PART_CONCURRENCY parts), not the object. A part that fails transiently is sent
   * again once from a new stream of its range; a create-only PutObject is sent once
   * (a repeat could meet its own object: the retry wrapper tells that apart).
   */
  async putFile(key: string, file: LocalFile, opts: PutOptions = {}): Promise<void> {
    const Key = this.key(key);
    const src = await OpenedFile.open(file);
    try {
      if (opts.ifAbsent && (await this.stat(key))) {
        throw new LifeboatError('ALREADY_EXISTS', `${key} already exists in ${this.location}`);
      }
      if (src.size > MULTIPART_THRESHOLD) {
        await this.putParts(Key, src);
      } else {
        const { whole } = await src.md5s(Math.max(1, src.size));
        await this.sendStreamed(src, opts.ifAbsent ? 1 : STREAM_ATTEMPTS, (abortSignal, Body) =>
          this.streamClient.send(
            new PutObjectCommand({ Bucket: this.bucket, Key, Body, ContentLength: src.size, ContentMD5: whole.toString('base64'), ...(opts.ifAbsent ? { IfNoneMatch: '*' } : {}) }),
            { abortSignal },
          ),
          0,
          src.size,
        );
      }
    } catch (err) {
      if (err instanceof LifeboatError) throw err;
      if (src.failure !== undefined) throw src.failure;
      const status = httpStatus(err);
      if (opts.ifAbsent && (status === 412 || status === 409)) {
        throw new LifeboatError('ALREADY_EXISTS', `${key} already exists in ${this.location}`);
      }
      throw this.error(err, `put ${key}`);
    } finally {
      await src.close();
    }
  }

  /**
   * A multipart upload from `src`: PART_SIZE parts, PART_CONCURRENCY at a time, each
   * with its Content-MD5, then the commit; on failure the upload is aborted (its parts
   * deleted, best effort, as lib-storage's leavePartsOnError: false does for put).
   */
  private async putParts(Key: string, src: OpenedFile): Promise<void> {
    const { parts: md5s } = await src.md5s(PART_SIZE);
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key }));
    if (!UploadId) throw new Error('CreateMultipartUpload returned no upload id');
    try {
      const done: CompletedPart[] = [];
      let next = 0;
      let failed = false;
      const worker = async (): Promise<void> => {
        while (!failed && next < md5s.length) {
          const i = next++;
          const offset = i * PART_SIZE;
          const length = Math.min(PART_SIZE, src.size - offset);
          try {
            const out = await this.sendStreamed(src, STREAM_ATTEMPTS, (abortSignal, Body) =>
              this.streamClient.send(
                new UploadPartCommand({ Bucket: this.bucket, Key, UploadId, PartNumber: i + 1, Body, ContentLength: length, ContentMD5: (md5s[i] as Buffer).toString('base64') }),
                { abortSignal },
              ),
              offset,
              length,
            );
            if (!out.ETag) throw new Error(`part ${i + 1} came back without an ETag`);
            done.push({ PartNumber: i + 1, ETag: out.ETag });
          } catch (err) {
            failed = true;
            throw err;
          }
        }
      };
      // Every worker settles before the file may be closed under a request still sending.
      const results = await Promise.allSettled(Array.from({ length: Math.min(PART_CONCURRENCY, md5s.length) }, worker));
      const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (rejected) throw rejected.reason;
      done.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId, MultipartUpload: { Parts: done } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId })).catch(() => {});
      throw err;
    }
  }

  /**
   * Sends one request whose body is the `length` bytes of `src` at `offset`, up to
   * `attempts` times while it fails transiently, each time with a new stream. A
   * failure reading the file aborts the request and is what is raised.
   */
  private async sendStreamed<T>(
    src: OpenedFile,
    attempts: number,
    send: (abortSignal: AbortSignal, body: ReturnType<OpenedFile['range']>) => Promise<T>,
    offset: number,
    length: number,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const abort = new AbortController();
      try {
        return await send(abort.signal, src.range(offset, length, abort));
      } catch (err) {
        if (src.failure !== undefined) throw src.failure;
        if (attempt >= attempts || this.error(err, 'put').code !== 'STORE_UNAVAILABLE') throw err;
      }
    }
  }

  /** NOT_FOUND for a missing key; CORRUPT when a range reaches past the end. */
  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    const Key = this.key(key);
    if (range && range.length === 0) return emptyRangeRead(this, key, range);
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key, ...(range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {}) }),
      );
      const bytes = await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
      if (range && bytes.length !== range.length) throw this.pastEnd(key, range, undefined);
      return bytes;
    } catch (err) {
      if (err instanceof LifeboatError) throw err;
      if (httpStatus(err) === 416 && range) throw this.pastEnd(key, range, undefined);
      throw this.error(err, `get ${key}`, key);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return { key, size: out.ContentLength ?? 0 };
    } catch (err) {
      if (httpStatus(err) === 404 && !isNoSuchBucket(err)) return undefined;
      throw this.error(err, `stat ${key}`);
    }
  }

  /** Pages of 1000 keys; unfinished multipart uploads are not objects and never listed. */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const full = this.prefix + prefix;
    try {
      for await (const page of paginateListObjectsV2({ client: this.client, pageSize: 1000 }, { Bucket: this.bucket, Prefix: full })) {
        for (const o of page.Contents ?? []) {
          if (o.Key) yield { key: o.Key.slice(this.prefix.length), size: o.Size ?? 0 };
        }
      }
    } catch (err) {
      throw this.error(err, `list ${prefix || '/'}`);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
    } catch (err) {
      if (httpStatus(err) === 404 && !isNoSuchBucket(err)) return;
      throw this.error(err, `delete ${key}`);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.streamClient.destroy();
  }

  private pastEnd(key: string, range: ByteRange, size: number | undefined): LifeboatError {
    return new LifeboatError('CORRUPT', `${key} in ${this.location} is shorter than the range ${range.offset}+${range.length}${size === undefined ? '' : ` (size ${size})`}`);
  }

  /** One place that turns SDK and network failures into Lifeboat's codes, naming the store. */
  private error(err: unknown, doing: string, key?: string): LifeboatError {
    const status = httpStatus(err);
    const name = err instanceof Error ? err.name : '';
    const code = errno(err) ?? '';
    const detail = err instanceof Error ? err.message || name : String(err);
    const where = `${this.location}: ${doing}`;
    if (isNoSuchBucket(err)) {
      return new LifeboatError('REPO_NOT_FOUND', `${where}: bucket "${this.bucket}" does not exist`, {
        hint: 'create the bucket first (aws s3 mb, or the provider console), then `lifeboat init`',
        cause: err,
      });
    }
    if (key && (name === 'NoSuchKey' || status === 404)) {
      return new LifeboatError('NOT_FOUND', `${key} not found in ${this.location}`, { cause: err });
    }
    if (status === 403 || ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'CredentialsProviderError'].includes(name)) {
      return new LifeboatError('PERMISSION', `${where}: access denied (${name || status})`, {
        hint: 'check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile or role) and the bucket policy',
        cause: err,
      });
    }
    if (name === 'EntityTooLarge' || name === 'QuotaExceeded') {
      return new LifeboatError('NO_SPACE', `${where}: ${detail}`, { hint: 'the bucket refuses more data (quota)', cause: err });
    }
    const transient =
      (status !== undefined && (status >= 500 || status === 429)) ||
      ['SlowDown', 'ThrottlingException', 'RequestTimeout', 'TimeoutError', 'RequestTimeTooSkewed'].includes(name) ||
      ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code);
    if (transient || status === undefined) {
      return new LifeboatError('STORE_UNAVAILABLE', `${where}: ${detail || code || 'no response'}`, {
        hint: 'check the endpoint address and the network; transient errors are retried with backoff',
        cause: err,
      });
    }
    return new LifeboatError('FAILED', `${where}: ${detail} (HTTP ${status})`, { cause: err });
  }
}

function httpStatus(err: unknown): number | undefined {
  const meta = (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata;
  return meta?.httpStatusCode;
}

function isNoSuchBucket(err: unknown): boolean {
  return err instanceof Error && (err.name === 'NoSuchBucket' || (err as { Code?: string }).Code === 'NoSuchBucket');
}

export async function openS3Store(rest: string, location: string): Promise<S3Store> {
  return new S3Store(parseS3Location(rest, location), location);
}
