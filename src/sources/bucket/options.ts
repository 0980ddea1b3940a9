/**
 * The lifeboat.yaml keys of a bucket source, declared once (see src/config/model.ts),
 * and what they set. Credentials are not keys: like a repository's S3 or Azure
 * stores, the bucket is opened with the environment's (AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_PROFILE, AZURE_STORAGE_CONNECTION_STRING or
 * AZURE_STORAGE_ACCOUNT + AZURE_STORAGE_KEY), so no secret is ever in the file or on argv.
 */
import * as z from 'zod';
import type { SourceConfig } from '../../config/config.js';
import { LifeboatError } from '../../errors.js';
import { lazily, option, text, whole } from '../../config/schema.js';

/** Objects transferred at once: enough to hide per-request latency; each small object costs one request. */
export const DEFAULT_PARALLEL = 8;

/** The kind's own keys (also `lifeboat bucket …`'s flags of the same names, cli/bucket.ts). */
export const bucketSettings = lazily(() => z.object({
  location: option(text(), {
    description: 'the bucket and prefix, in the same syntax as a repository store: `s3:https://host[:port]/bucket/prefix`, `s3://bucket/prefix` (AWS) or `azure:container/prefix`; credentials come from the environment, as for repositories',
    example: 's3:https://minio.example:9000/uploads/photos',
  }),
  parallel: option(whole(1, 64).optional(), { description: 'objects downloaded (and restored) at once', flag: '--parallel', shown: String(DEFAULT_PARALLEL) }),
  limit_download: option(whole(0, 1e9).optional(), { description: 'KiB/s read from the bucket; 0: unlimited', flag: '--limit-bucket-download', shown: 'unlimited' }),
}));

export const bucketOptions = lazily(() => bucketSettings());

export type BucketSettings = z.output<ReturnType<typeof bucketSettings>>;

export function bucketFields(o: z.output<ReturnType<typeof bucketOptions>>): Partial<SourceConfig> {
  return { continuous: false, settings: { ...o } };
}

/** The source's own keys, read back with the schema that wrote them (CONFIG_INVALID if something else put them there). */
export function settingsOf(s: Pick<SourceConfig, 'name' | 'settings'>): BucketSettings {
  const r = bucketSettings().safeParse(s.settings ?? {});
  if (!r.success) throw new LifeboatError('CONFIG_INVALID', `source ${s.name}: its bucket settings do not parse`, { hint: 'check location, parallel and limit_download in lifeboat.yaml' });
  return r.data;
}
