/**
 * Object access (../objects.ts) on S3, through the S3Store's own client: listing with
 * ETags and times, streamed reads carrying metadata, and streamed writes with the
 * content type and user metadata restored.
 *
 * Writes up to MULTIPART_THRESHOLD are read into memory and sent in one PutObject
 * with a Content-MD5 (the server refuses damaged bytes); larger ones go up as a
 * multipart upload from the stream, PART_SIZE × QUEUE bytes held at most.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { GetBucketVersioningCommand, GetObjectCommand, PutObjectCommand, type S3Client, paginateListObjectsV2 } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { LifeboatError } from '../../errors.js';
import type { ListedObject, ObjectAccess, ObjectMeta, OpenedObject } from '../objects.js';

export const OBJECT_MULTIPART_THRESHOLD = 8 << 20;
const PART_SIZE = 8 << 20;
const QUEUE = 2;

export type S3ErrorFn = (err: unknown, doing: string, key?: string) => LifeboatError;

export class S3Objects implements ObjectAccess {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    /** The location's prefix with its trailing slash, or ''. */
    private readonly prefix: string,
    private readonly error: S3ErrorFn,
    private readonly probeBucket: () => Promise<void>,
  ) {}

  probe(): Promise<void> {
    return this.probeBucket();
  }

  async *listObjects(prefix: string): AsyncIterable<ListedObject> {
    try {
      for await (const page of paginateListObjectsV2({ client: this.client, pageSize: 1000 }, { Bucket: this.bucket, Prefix: this.prefix + prefix })) {
        for (const o of page.Contents ?? []) {
          if (!o.Key) continue;
          yield {
            key: o.Key.slice(this.prefix.length),
            size: o.Size ?? 0,
            etag: o.ETag ?? '',
            lastModified: (o.LastModified ?? new Date(0)).toISOString(),
          };
        }
      }
    } catch (err) {
      throw this.error(err, `list ${prefix || '/'}`);
    }
  }

  async openObject(key: string): Promise<OpenedObject> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return {
        body: out.Body as Readable,
        size: out.ContentLength ?? 0,
        etag: out.ETag ?? '',
        lastModified: (out.LastModified ?? new Date(0)).toISOString(),
        ...(out.VersionId && out.VersionId !== 'null' ? { versionId: out.VersionId } : {}),
        ...(out.ContentType ? { contentType: out.ContentType } : {}),
        metadata: { ...(out.Metadata ?? {}) },
      };
    } catch (err) {
      throw this.error(err, `get ${key}`, key);
    }
  }

  async putObject(key: string, body: () => Readable, size: number, meta: ObjectMeta): Promise<void> {
    const params = { Bucket: this.bucket, Key: this.prefix + key, ...(meta.contentType ? { ContentType: meta.contentType } : {}), Metadata: meta.metadata };
    try {
      if (size > OBJECT_MULTIPART_THRESHOLD) {
        await new Upload({ client: this.client, params: { ...params, Body: body() }, partSize: PART_SIZE, queueSize: QUEUE, leavePartsOnError: false }).done();
        return;
      }
      const chunks: Buffer[] = [];
      for await (const c of body()) chunks.push(c as Buffer);
      const Body = Buffer.concat(chunks);
      const ContentMD5 = createHash('md5').update(Body).digest('base64');
      await this.client.send(new PutObjectCommand({ ...params, Body, ContentMD5 }));
    } catch (err) {
      throw this.error(err, `put ${key}`);
    }
  }

  async versioned(): Promise<boolean> {
    try {
      const out = await this.client.send(new GetBucketVersioningCommand({ Bucket: this.bucket }));
      return out.Status === 'Enabled';
    } catch {
      // Servers without the call (s3rver) keep no versions either.
      return false;
    }
  }
}
