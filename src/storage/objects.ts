/**
 * Object access: what a bucket *source* needs from a cloud store beyond the flat
 * Store seam, which knows keys and bytes only. A bucket's objects carry a content
 * type, user metadata, an ETag, a modification time and (in a versioned bucket) a
 * version id, and are read and written as streams, never whole in memory.
 *
 * It is a capability, not a wider Store: the S3 and Azure stores offer it as
 * `store.objects`, the retry and throttle wrappers pass it through wrapped, and
 * everything else (local, memory, multi, append-only) simply has none. Keys here are
 * the bucket's own, relative to the location's prefix, and are not checked with
 * assertKey: a bucket may hold `a//b` or `../x`, which a repository never writes.
 */
import type { Readable } from 'node:stream';

/** One listed object. */
export interface ListedObject {
  key: string;
  size: number;
  /** As the service reports it, quotes included (`"9b2c…"`, `"…-3"` for multipart). */
  etag: string;
  /** ISO 8601, as listed (S3 lists whole seconds; Azure too). */
  lastModified: string;
  /** Only where the service lists one (Azure with versioning on). */
  versionId?: string;
}

/** What is written back with an object. */
export interface ObjectMeta {
  contentType?: string;
  /** User metadata (S3 `x-amz-meta-*`, Azure `x-ms-meta-*`), names lowercased by S3. */
  metadata: Record<string, string>;
}

/** An object opened for reading: its body streams; the rest came with the response. */
export interface OpenedObject extends ObjectMeta {
  body: Readable;
  size: number;
  etag: string;
  lastModified: string;
  versionId?: string;
}

export interface ObjectAccess {
  /** Fails with REPO_NOT_FOUND (no such bucket/container), PERMISSION or STORE_UNAVAILABLE; reads nothing else. */
  probe(): Promise<void>;
  /**
   * Every object whose key starts with `prefix`, in the service's listing order
   * (S3 and Azure: ascending by the key's UTF-8 bytes). Pages are fetched as the
   * caller iterates, so memory stays at one page.
   */
  listObjects(prefix: string): AsyncIterable<ListedObject>;
  /** Opens `key` for reading (NOT_FOUND when it is gone). The caller must consume or destroy `body`. */
  openObject(key: string): Promise<OpenedObject>;
  /**
   * Writes `key` with `meta`, reading its `size` bytes from `body()`. `body` is a
   * factory so a retry can read the bytes again; each call must give the same bytes.
   * Replaces an existing object. Durable when it resolves.
   */
  putObject(key: string, body: () => Readable, size: number, meta: ObjectMeta): Promise<void>;
  /** Whether the bucket keeps versions (S3 GetBucketVersioning "Enabled"); false when it cannot be told. */
  versioned(): Promise<boolean>;
}

/** A store's object access, when it has one. */
export function objectAccessOf(store: object): ObjectAccess | undefined {
  return (store as { objects?: ObjectAccess }).objects;
}
