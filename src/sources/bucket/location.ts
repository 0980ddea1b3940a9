/**
 * Opens a bucket location (the same syntax and credentials as a repository's S3 or
 * Azure store) for object access, through the same wrappers a repository gets:
 * retries with backoff for transient failures, and a bandwidth limit when one is set.
 * The bucket is probed once, so a wrong key or a missing bucket is one clear line
 * before anything else is tried.
 */
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { registerBuiltinStores } from '../../storage/builtin.js';
import { openComposite } from '../../storage/compose.js';
import { objectAccessOf, type ObjectAccess } from '../../storage/objects.js';
import { parseLocation } from '../../storage/registry.js';

export interface OpenedBucket {
  objects: ObjectAccess;
  location: string;
  close(): Promise<void>;
}

export interface BucketOpenOptions {
  /** KiB/s each way; 0 or undefined: unlimited. */
  limitDownloadKiB?: number;
  limitUploadKiB?: number;
  /** 'source' (backing up from it) or 'target' (restoring into it): words the errors. */
  role: 'source' | 'target';
}

export async function openBucket(location: string, opts: BucketOpenOptions): Promise<OpenedBucket> {
  const { scheme } = parseLocation(location);
  if (scheme !== 's3' && scheme !== 'azure') {
    throw new LifeboatError('USAGE', `${location} is not a bucket location`, {
      hint: 'use s3:https://host[:port]/bucket/prefix, s3://bucket/prefix (AWS) or azure:container/prefix',
    });
  }
  registerBuiltinStores();
  // The same retry setting as a repository's stores (cli/context.ts storeSpec).
  const retries = process.env.LIFEBOAT_STORE_RETRIES;
  const store = await openComposite({
    locations: [location],
    ...(retries !== undefined ? { attempts: Math.max(1, Number(retries) || 1) } : {}),
    ...(opts.limitDownloadKiB ? { limitDownloadKiB: opts.limitDownloadKiB } : {}),
    ...(opts.limitUploadKiB ? { limitUploadKiB: opts.limitUploadKiB } : {}),
  });
  const objects = objectAccessOf(store);
  if (!objects) {
    await store.close();
    throw new LifeboatError('USAGE', `${location} offers no object access`, { hint: 'a bucket location is an S3 or Azure one' });
  }
  try {
    await objects.probe();
  } catch (err) {
    await store.close();
    throw bucketError(err, location, opts.role);
  }
  return { objects, location, close: () => store.close() };
}

/**
 * A store's error reworded for a bucket: its hints speak of repositories (`lifeboat
 * init`). The code stays, so exit codes are the documented ones: REPO_NOT_FOUND (10)
 * for a missing bucket, PERMISSION for refused credentials.
 */
export function bucketError(err: unknown, location: string, role: 'source' | 'target'): unknown {
  const env = location.startsWith('azure:')
    ? 'AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY (and AZURE_STORAGE_ENDPOINT)'
    : 'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and the bucket policy';
  if (isLifeboatError(err, 'REPO_NOT_FOUND')) {
    return new LifeboatError('REPO_NOT_FOUND', `bucket ${role} ${location}: the bucket (container) does not exist`, {
      hint: role === 'source' ? 'check the location\'s bucket name (s3:https://host/BUCKET/prefix, azure:CONTAINER/prefix)' : 'create the target bucket first; a restore never creates one',
      cause: err,
    });
  }
  if (isLifeboatError(err, 'PERMISSION')) {
    return new LifeboatError('PERMISSION', `bucket ${role} ${location}: access denied`, { hint: `check ${env}`, cause: err });
  }
  return err;
}
