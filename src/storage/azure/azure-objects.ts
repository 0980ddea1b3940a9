/**
 * Object access (../objects.ts) on Azure Blob Storage, through the AzureStore's own
 * container client: listing with ETags and times, streamed reads carrying the
 * content type and metadata, streamed writes that restore them.
 *
 * Writes up to SINGLE_PUT_LIMIT are read into memory and sent in one Put Blob with
 * their MD5 (the service refuses damaged bytes); larger ones go up in blocks from the
 * stream (uploadStream), BLOCK_SIZE × BLOCK_CONCURRENCY bytes held at most.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ContainerClient } from '@azure/storage-blob';
import type { LifeboatError } from '../../errors.js';
import type { ListedObject, ObjectAccess, ObjectMeta, OpenedObject } from '../objects.js';

const SINGLE_PUT_LIMIT = 8 << 20;
const BLOCK_SIZE = 4 << 20;
const BLOCK_CONCURRENCY = 4;
const LIST_PAGE = 1000;
const OP_TIMEOUT_MS = 10 * 60_000;

export type AzureErrorFn = (err: unknown, doing: string, key?: string) => LifeboatError;

export class AzureObjects implements ObjectAccess {
  constructor(
    private readonly container: ContainerClient,
    /** The location's prefix with its trailing slash, or ''. */
    private readonly prefix: string,
    private readonly error: AzureErrorFn,
    private readonly probeContainer: () => Promise<void>,
  ) {}

  probe(): Promise<void> {
    return this.probeContainer();
  }

  async *listObjects(prefix: string): AsyncIterable<ListedObject> {
    const pages = this.container.listBlobsFlat({ prefix: this.prefix + prefix }).byPage({ maxPageSize: LIST_PAGE });
    try {
      for await (const page of pages) {
        for (const item of page.segment.blobItems) {
          yield {
            key: item.name.slice(this.prefix.length),
            size: item.properties.contentLength ?? 0,
            // Listings give the ETag bare, responses quoted (HTTP's form): one form, so they compare.
            etag: quoted(item.properties.etag ?? ''),
            lastModified: item.properties.lastModified.toISOString(),
            ...(item.versionId ? { versionId: item.versionId } : {}),
          };
        }
      }
    } catch (err) {
      throw this.error(err, `list ${prefix || '/'}`);
    }
  }

  async openObject(key: string): Promise<OpenedObject> {
    try {
      const res = await this.container.getBlockBlobClient(this.prefix + key).download(0, undefined, { maxRetryRequests: 1, abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS) });
      const body = res.readableStreamBody as Readable | undefined;
      if (!body) throw new Error('the response has no body');
      return {
        body,
        size: res.contentLength ?? 0,
        etag: quoted(res.etag ?? ''),
        lastModified: (res.lastModified ?? new Date(0)).toISOString(),
        ...(res.versionId ? { versionId: res.versionId } : {}),
        ...(res.contentType ? { contentType: res.contentType } : {}),
        metadata: { ...(res.metadata ?? {}) },
      };
    } catch (err) {
      throw this.error(err, `get ${key}`, key);
    }
  }

  async putObject(key: string, body: () => Readable, size: number, meta: ObjectMeta): Promise<void> {
    const blob = this.container.getBlockBlobClient(this.prefix + key);
    const headers = meta.contentType ? { blobContentType: meta.contentType } : {};
    try {
      if (size > SINGLE_PUT_LIMIT) {
        await blob.uploadStream(body(), BLOCK_SIZE, BLOCK_CONCURRENCY, { blobHTTPHeaders: headers, metadata: meta.metadata, abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS) });
        return;
      }
      const chunks: Buffer[] = [];
      for await (const c of body()) chunks.push(c as Buffer);
      const data = Buffer.concat(chunks);
      await blob.upload(data, data.length, {
        blobHTTPHeaders: { ...headers, blobContentMD5: createHash('md5').update(data).digest() },
        metadata: meta.metadata,
        abortSignal: AbortSignal.timeout(OP_TIMEOUT_MS),
      });
    } catch (err) {
      throw this.error(err, `put ${key}`);
    }
  }

  /** Versioning is an account setting the container cannot tell; listed version ids are recorded where they appear. */
  async versioned(): Promise<boolean> {
    return false;
  }
}

function quoted(etag: string): string {
  return etag === '' || etag.startsWith('"') || etag.startsWith('W/') ? etag : `"${etag}"`;
}
