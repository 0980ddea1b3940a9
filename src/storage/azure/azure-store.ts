/**
 * Azure Blob Storage through @azure/storage-blob: every object is a block blob.
 *
 * Location: `azure:CONTAINER[/prefix]`. The container must exist (creating one is
 * an account decision: region, redundancy, access policy). Credentials come from the
 * environment, like the `az` CLI reads them: AZURE_STORAGE_CONNECTION_STRING, or
 * AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY with an optional AZURE_STORAGE_ENDPOINT
 * (default https://ACCOUNT.blob.core.windows.net; azurite is
 * http://127.0.0.1:PORT/devstoreaccount1).
 *
 * Uploads carry an MD5 the service checks, so bytes damaged on the way are refused
 * rather than stored: a small object is one Put Blob with its MD5; a large one (a
 * pack) goes up as blocks in parallel, each with its own MD5, then one commit. The
 * SDK repeats a failed request once (a create-only write never): backoff is the retry
 * wrapper's job, and it knows which failures are worth waiting for.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  BlobServiceClient,
  RestError,
  StorageSharedKeyCredential,
  type BlockBlobClient,
  type BlobRequestConditions,
  type ContainerClient,
  type StoragePipelineOptions,
} from '@azure/storage-blob';
import { LifeboatError, errno } from '../../errors.js';
import { OpenedFile } from '../local-file.js';
import { assertKey, emptyRangeRead, type ByteRange, type LocalFile, type ObjectInfo, type PutOptions, type Store } from '../store.js';
import { AzureObjects } from './azure-objects.js';
import { azureCredentialsFromEnv, parseAzureLocation, type AzureCredentials, type AzureLocation } from './azure-config.js';

/**
 * Objects up to this size go up in one Put Blob; above it, in blocks. A 16 MiB pack
 * then becomes four 4 MiB blocks sent at once: on a long fat link one TCP stream
 * rarely fills the pipe, and a failed block is re-sent alone, not the whole pack.
 */
const SINGLE_PUT_LIMIT = 8 << 20;
const BLOCK_SIZE = 4 << 20;
/** Blocks of one object in flight at once; several objects may be uploading too. */
const BLOCK_CONCURRENCY = 4;
/**
 * No single operation may take longer than this. The SDK sets no client-side
 * timeout, so a connection that stalls without closing would hang a backup forever;
 * ten minutes lets a 16 MiB pack through a link of 30 KB/s.
 */
const OP_TIMEOUT_MS = 10 * 60_000;
/** Azure pages listings at 5000 by default; 1000 keeps each response small. */
const LIST_PAGE = 1000;

/**
 * One extra attempt, right away, for what the SDK considers transient (connection
 * refused or reset, 500, 503): enough to ride over a dropped keep-alive socket.
 * Anything longer is the retry wrapper's decision.
 */
const PIPELINE: StoragePipelineOptions = {
  retryOptions: { maxTries: 2, retryDelayInMs: 500, maxRetryDelayInMs: 2_000 },
  userAgentOptions: { userAgentPrefix: 'lifeboat' },
};
/**
 * Create-only writes are sent once: had the SDK repeated one whose answer was lost,
 * the repeat would meet our own blob and report ALREADY_EXISTS. The retry wrapper
 * sees its own repeats and reads the object back to tell the two cases apart.
 */
const PIPELINE_ONCE: StoragePipelineOptions = { ...PIPELINE, retryOptions: { maxTries: 1 } };

function serviceClient(creds: AzureCredentials, pipeline: StoragePipelineOptions): BlobServiceClient {
  if ('connectionString' in creds) {
    try {
      return BlobServiceClient.fromConnectionString(creds.connectionString, pipeline);
    } catch (err) {
      throw new LifeboatError('USAGE', `AZURE_STORAGE_CONNECTION_STRING cannot be used: ${err instanceof Error ? err.message : String(err)}`, {
        hint: 'copy the connection string from "Access keys" in the storage account (or `az storage account show-connection-string`)',
        cause: err,
      });
    }
  }
  return new BlobServiceClient(creds.endpoint, new StorageSharedKeyCredential(creds.account, creds.key), pipeline);
}

export class AzureStore implements Store {
  readonly location: string;
  private readonly container: ContainerClient;
  /** The same container through a pipeline that never repeats a request (PIPELINE_ONCE). */
  private readonly containerOnce: ContainerClient;
  private readonly containerName: string;
  /** The location's prefix with a trailing slash, or ''. */
  private readonly prefix: string;
  /** Object access for a bucket source (../objects.ts), on this store's client. */
  readonly objects: AzureObjects;

  constructor(loc: AzureLocation, creds: AzureCredentials) {
    this.containerName = loc.container;
    this.prefix = loc.prefix ? `${loc.prefix}/` : '';
    this.location = `azure:${loc.container}${loc.prefix ? `/${loc.prefix}` : ''}`;
    this.container = serviceClient(creds, PIPELINE).getContainerClient(loc.container);
    this.containerOnce = serviceClient(creds, PIPELINE_ONCE).getContainerClient(loc.container);
    this.objects = new AzureObjects(this.container, this.prefix, (err, doing, key) => this.error(err, doing, key), () => this.probe());
  }

  private blob(key: string): BlockBlobClient {
    assertKey(key);
    return this.container.getBlockBlobClient(this.prefix + key);
  }

  /**
   * Checks that the container exists and the credentials open it: REPO_NOT_FOUND,
   * PERMISSION or STORE_UNAVAILABLE before anything else is tried. Idempotent, reads
   * nothing but the container's properties.
   */
  async probe(): Promise<void> {
    try {
      await this.container.getProperties({ abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS) });
    } catch (err) {
      throw this.error(err, 'open');
    }
  }

  /**
   * Durable when it resolves: Azure acknowledges a Put Blob or a block-list commit
   * only once the blob is stored (three copies at least). Readers see the old blob or
   * the new one, never a mix, since a blob's content changes only at that commit.
   * Idempotent for identical bytes. With ifAbsent the service enforces create-only
   * (If-None-Match: *) and an existing key raises ALREADY_EXISTS. Bytes damaged on
   * the way fail the MD5 check: STORE_UNAVAILABLE (send again), nothing stored.
   */
  async put(key: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    const blob = this.blob(key);
    // The request that creates the blob: sent once when create-only (PIPELINE_ONCE).
    const final = opts.ifAbsent ? this.containerOnce.getBlockBlobClient(blob.name) : blob;
    const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const md5 = createHash('md5').update(body).digest();
    const conditions: BlobRequestConditions = opts.ifAbsent ? { ifNoneMatch: '*' } : {};
    const abortSignal = AbortSignal.timeout(OP_TIMEOUT_MS);
    try {
      if (body.length <= SINGLE_PUT_LIMIT) {
        // On Put Blob the service checks x-ms-blob-content-md5 against the bytes it
        // received (it is interchangeable with Content-MD5 there) and stores it.
        await final.upload(body, body.length, { blobHTTPHeaders: { blobContentMD5: md5 }, conditions, abortSignal });
      } else {
        // Staging a block is idempotent, so blocks may use the retrying pipeline.
        const block = (offset: number, length: number) => {
          const part = body.subarray(offset, offset + length);
          return { body: part, md5: createHash('md5').update(part).digest() };
        };
        await putBlocks(blob, final, body.length, block, md5, conditions, abortSignal);
      }
    } catch (err) {
      if (opts.ifAbsent && isExistsConflict(err)) {
        throw new LifeboatError('ALREADY_EXISTS', `${key} already exists in ${this.location}`, { cause: err });
      }
      throw this.error(err, `put ${key}`);
    }
  }

  /**
   * `put` for a file, streamed from it: the same requests (one Put Blob up to
   * SINGLE_PUT_LIMIT, else BLOCK_SIZE blocks then a commit), the same create-only
   * condition sent once, the same MD5s (of the blob, and of each block, the service
   * checks them), computed in a first pass over the file. Each request's body is a
   * factory the SDK calls again when it repeats the request, so every attempt reads
   * its range through a new stream. What is held is a few 256 KiB reads per request
   * in flight (at most BLOCK_CONCURRENCY blocks), not the object.
   */
  async putFile(key: string, file: LocalFile, opts: PutOptions = {}): Promise<void> {
    const blob = this.blob(key);
    const final = opts.ifAbsent ? this.containerOnce.getBlockBlobClient(blob.name) : blob;
    const conditions: BlobRequestConditions = opts.ifAbsent ? { ifNoneMatch: '*' } : {};
    const src = await OpenedFile.open(file);
    // A failure reading the file aborts the request under way (see OpenedFile.range).
    const local = new AbortController();
    const abortSignal = AbortSignal.any([AbortSignal.timeout(OP_TIMEOUT_MS), local.signal]);
    const range = (offset: number, length: number) => () => src.range(offset, length, local);
    try {
      if (src.size <= SINGLE_PUT_LIMIT) {
        const { whole } = await src.md5s(Math.max(1, src.size));
        await final.upload(range(0, src.size), src.size, { blobHTTPHeaders: { blobContentMD5: whole }, conditions, abortSignal });
      } else {
        const { whole, parts } = await src.md5s(BLOCK_SIZE);
        const block = (offset: number, length: number) => ({ body: range(offset, length), md5: parts[offset / BLOCK_SIZE] as Buffer });
        await putBlocks(blob, final, src.size, block, whole, conditions, abortSignal);
      }
    } catch (err) {
      if (src.failure !== undefined) throw src.failure;
      if (opts.ifAbsent && isExistsConflict(err)) {
        throw new LifeboatError('ALREADY_EXISTS', `${key} already exists in ${this.location}`, { cause: err });
      }
      throw this.error(err, `put ${key}`);
    } finally {
      await src.close();
    }
  }

  /**
   * The whole object or `range` of it, in one buffer. A missing key raises NOT_FOUND;
   * a range reaching past the end raises CORRUPT (checked on the bytes that came back,
   * since Azure answers a range overlapping the end with the shorter part).
   */
  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    const blob = this.blob(key);
    if (range && (!Number.isSafeInteger(range.offset) || !Number.isSafeInteger(range.length) || range.offset < 0 || range.length < 0)) {
      throw this.pastEnd(key, range);
    }
    if (range && range.length === 0) return emptyRangeRead(this, key, range);
    try {
      // maxRetryRequests: a body cut off midway is asked for again from where it
      // stopped (pinned to the same ETag), once; then the error surfaces.
      const res = await blob.download(range?.offset ?? 0, range?.length, {
        maxRetryRequests: 1,
        abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS),
      });
      const bytes = await readBody(res.readableStreamBody, res.contentLength).catch((err: unknown) => {
        throw new TransferError(`reading the response: ${firstLine(err)}`, err);
      });
      if (range && bytes.length !== range.length) throw this.pastEnd(key, range, res.contentLength);
      return bytes;
    } catch (err) {
      if (err instanceof LifeboatError) throw err;
      if (range && restInfo(err).status === 416) throw this.pastEnd(key, range);
      throw this.error(err, `get ${key}`, key);
    }
  }

  /** Size of the object, or undefined when it does not exist (a missing container is REPO_NOT_FOUND). */
  async stat(key: string): Promise<ObjectInfo | undefined> {
    const blob = this.blob(key);
    try {
      const props = await blob.getProperties({ abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS) });
      return { key, size: props.contentLength ?? 0 };
    } catch (err) {
      const { status, code } = restInfo(err);
      if (status === 404 && code !== 'ContainerNotFound') return undefined;
      throw this.error(err, `stat ${key}`);
    }
  }

  /**
   * Keys under `prefix`, relative to the location, in pages of 1000. Blobs with only
   * uncommitted blocks (an upload in progress or abandoned) are not listed: Azure
   * lists committed blobs unless asked otherwise.
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const pages = this.container.listBlobsFlat({ prefix: this.prefix + prefix }).byPage({ maxPageSize: LIST_PAGE });
    try {
      for await (const page of pages) {
        for (const item of page.segment.blobItems) {
          yield { key: item.name.slice(this.prefix.length), size: item.properties.contentLength ?? 0 };
        }
      }
    } catch (err) {
      throw this.error(err, `list ${prefix || '/'}`);
    }
  }

  /** Idempotent: a missing blob is success; a missing container is REPO_NOT_FOUND. */
  async delete(key: string): Promise<void> {
    const blob = this.blob(key);
    try {
      await blob.deleteIfExists({ abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS) });
    } catch (err) {
      throw this.error(err, `delete ${key}`);
    }
  }

  /**
   * Nothing to release: the SDK's keep-alive sockets are unreferenced when idle, so
   * they never hold the process open. Safe to call more than once.
   */
  async close(): Promise<void> {}

  private pastEnd(key: string, range: ByteRange, size?: number): LifeboatError {
    const got = size === undefined ? '' : ` (${size} bytes came back)`;
    return new LifeboatError('CORRUPT', `${key} in ${this.location} is shorter than the range ${range.offset}+${range.length}${got}`, {
      hint: 'the object was truncated or replaced; run `lifeboat check`',
    });
  }

  /** The one place SDK and network failures become Lifeboat's codes, naming the store. */
  private error(err: unknown, doing: string, key?: string): LifeboatError {
    if (err instanceof LifeboatError) return err;
    const { status, code } = restInfo(err);
    const where = `${this.location}: ${doing}`;
    const detail = firstLine(err) || code || (status ? `HTTP ${status}` : 'no response');
    if (code === 'ContainerNotFound' || code === 'ContainerBeingDeleted') {
      return new LifeboatError('REPO_NOT_FOUND', `${where}: container "${this.containerName}" does not exist`, {
        hint: `create the container first (\`az storage container create --name ${this.containerName}\`, or the portal), then \`lifeboat init\``,
        cause: err,
      });
    }
    if (status === 403 || status === 401 || PERMISSION_CODES.has(code)) {
      return new LifeboatError('PERMISSION', `${where}: access denied (${code || status})`, {
        hint: `check the account key / SAS (AZURE_STORAGE_KEY or AZURE_STORAGE_CONNECTION_STRING) for account "${this.container.accountName}", and the account's network rules`,
        cause: err,
      });
    }
    if (key !== undefined && status === 404) {
      return new LifeboatError('NOT_FOUND', `${key} not found in ${this.location}`, { cause: err });
    }
    if (code === 'Md5Mismatch' || (status === 400 && /md5/i.test(detail))) {
      return new LifeboatError('STORE_UNAVAILABLE', `${where}: the service refused bytes damaged in transit (MD5 mismatch)`, {
        hint: 'nothing was stored; the upload can simply be repeated',
        cause: err,
      });
    }
    const name = err instanceof Error ? err.name : '';
    if (name === 'AbortError' || name === 'TimeoutError') {
      return new LifeboatError('STORE_UNAVAILABLE', `${where}: no answer within ${OP_TIMEOUT_MS / 60_000} minutes`, {
        hint: 'check the network path to the storage account; transient errors are retried with backoff',
        cause: err,
      });
    }
    const transient =
      err instanceof TransferError ||
      (err instanceof RestError && status === undefined) ||
      (status !== undefined && status >= 500) ||
      status === 429 ||
      status === 408 ||
      TRANSIENT_CODES.has(code) ||
      NETWORK_CODES.has(errno(err) ?? '');
    if (transient) {
      return new LifeboatError('STORE_UNAVAILABLE', `${where}: ${detail}`, {
        hint: 'check the account name or AZURE_STORAGE_ENDPOINT and the network; transient errors are retried with backoff',
        cause: err,
      });
    }
    const http = status === undefined ? '' : ` (HTTP ${status}${code ? ` ${code}` : ''})`;
    return new LifeboatError('FAILED', `${where}: ${detail}${http}`, { cause: err });
  }
}

/** Azure error codes that mean the credentials or their rights are wrong. */
const PERMISSION_CODES = new Set([
  'AuthenticationFailed', 'AuthorizationFailure', 'AuthorizationPermissionMismatch', 'AuthorizationProtocolMismatch',
  'AuthorizationResourceTypeMismatch', 'AuthorizationServiceMismatch', 'AuthorizationSourceIPMismatch',
  'InsufficientAccountPermissions', 'AccountIsDisabled', 'NoAuthenticationInformation',
]);
const TRANSIENT_CODES = new Set(['ServerBusy', 'OperationTimedOut', 'InternalError', 'REQUEST_SEND_ERROR']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH']);

/** HTTP status and Azure error code (x-ms-error-code) of an SDK error; network errors carry only a code. */
function restInfo(err: unknown): { status: number | undefined; code: string } {
  if (!(err instanceof RestError)) return { status: undefined, code: errno(err) ?? '' };
  const details = err.details as { errorCode?: unknown } | undefined;
  const code = typeof details?.errorCode === 'string' ? details.errorCode : (err.code ?? '');
  return { status: err.statusCode, code };
}

/** A create-only write met an existing blob: 409 BlobAlreadyExists, or 412 from a conditional commit. */
function isExistsConflict(err: unknown): boolean {
  const { status, code } = restInfo(err);
  return code === 'BlobAlreadyExists' || code === 'ConditionNotMet' || status === 412 || (status === 409 && code === '');
}

/** The first line of an SDK message (the rest is a request id and a timestamp). */
function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return (msg.split('\n')[0] ?? '').trim();
}

/**
 * Stages the `size` bytes `block` gives, BLOCK_SIZE at a time and BLOCK_CONCURRENCY
 * blocks at once, each with a Content-MD5 the service checks, then commits the list.
 * Until the commit the blob does not change (and a new one does not exist); blocks of
 * a failed upload are never committed and Azure discards them after a week. Block
 * ids have one fixed length, as Azure requires of all blocks of a blob, including
 * other writers' uncommitted ones. A failure is raised once every block under way
 * has settled, so nothing still reads the source when the caller closes it.
 */
async function putBlocks(
  blob: BlockBlobClient,
  commit: BlockBlobClient,
  size: number,
  block: (offset: number, length: number) => { body: Parameters<BlockBlobClient['stageBlock']>[1]; md5: Buffer },
  md5: Buffer,
  conditions: BlobRequestConditions,
  abortSignal: AbortSignal,
): Promise<void> {
  const count = Math.ceil(size / BLOCK_SIZE);
  const upload = randomBytes(8).toString('hex');
  const ids = Array.from({ length: count }, (_, i) => Buffer.from(`${upload}-${String(i).padStart(6, '0')}`).toString('base64'));
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < count) {
      const i = next++;
      const offset = i * BLOCK_SIZE;
      const length = Math.min(BLOCK_SIZE, size - offset);
      const part = block(offset, length);
      try {
        await blob.stageBlock(ids[i] as string, part.body, length, { transactionalContentMD5: part.md5, abortSignal });
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(BLOCK_CONCURRENCY, count) }, worker));
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
  // Put Block List stores this MD5 as the blob's Content-MD5 without checking it
  // (each block was checked on arrival): it lets `az storage blob download
  // --validate-content`, or anyone, verify the whole object later.
  await commit.commitBlockList(ids, { blobHTTPHeaders: { blobContentMD5: md5 }, conditions, abortSignal });
}

/** A response body that broke off or did not match its length: worth another try. */
class TransferError extends Error {
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'TransferError';
  }
}

/** Reads a response body into one buffer, allocated once when the length is known. */
async function readBody(stream: NodeJS.ReadableStream | undefined, length: number | undefined): Promise<Uint8Array> {
  if (!stream) return new Uint8Array(0);
  if (length === undefined) {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
    return Buffer.concat(chunks);
  }
  const out = Buffer.allocUnsafe(length);
  let filled = 0;
  for await (const chunk of stream) {
    const c = chunk as Uint8Array;
    // More than announced is a broken response, not data to keep.
    if (filled + c.length > length) throw new Error(`response body longer than its Content-Length (${length})`);
    out.set(c, filled);
    filled += c.length;
  }
  if (filled !== length) throw new Error(`response body ended after ${filled} of ${length} bytes`);
  return out;
}

/**
 * Opens `azure:CONTAINER[/prefix]` with credentials from the environment. Touches
 * nothing remote: a missing container or a wrong key shows on the first operation
 * (or call probe()).
 */
export async function openAzureStore(rest: string, location: string): Promise<AzureStore> {
  return new AzureStore(parseAzureLocation(rest, location), azureCredentialsFromEnv());
}
