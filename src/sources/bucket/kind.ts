/**
 * The `bucket` kind of source: the objects under an S3 bucket/prefix or an Azure
 * container/prefix, backed up incrementally (an object whose ETag, size and
 * last-modified are unchanged is not read again) and restored into a bucket, a
 * directory or one object. Everything generic code needs to know about it is here
 * (the Source seam, src/sources/source.ts); docs/bucket.md has the argument.
 */
import type { z } from 'zod';
import { NAME_OUTPUT_TIME_SNAPSHOT, restoreInvocation, snapshotOrTime } from '../../engine/restore-options.js';
import type { SourceKind } from '../source.js';
import { bucketFields, bucketOptions, settingsOf } from './options.js';
import { bucketPointSchema, type BucketPoint } from './point.js';

export const bucket: SourceKind<BucketPoint> = {
  name: 'bucket',
  get options() {
    return bucketOptions();
  },
  // The reader parsed the keys with bucketOptions: they are its output.
  fields: (o) => bucketFields(o as z.output<ReturnType<typeof bucketOptions>>),
  get point() {
    return bucketPointSchema();
  },

  async reach(s, probe) {
    try {
      const { openBucket } = await import('./location.js');
      const b = await probe.within(openBucket(settingsOf(s).location, { role: 'source' }), 'the bucket');
      await b.close();
      return [];
    } catch (err) {
      return [err instanceof Error ? err.message : String(err)];
    }
  },

  jobs: {
    backup: (s) => {
      const o = settingsOf(s);
      return {
        command: ['bucket', 'backup'],
        positionals: [o.location],
        options: [['--name', s.name], ['--parallel', o.parallel === undefined ? undefined : String(o.parallel)], ['--limit-bucket-download', o.limit_download ? String(o.limit_download) : undefined], ['--tag', s.tags]],
      };
    },
    drill: (s) => ({ command: ['drill'], options: [['--source', s.name]] }),
  },
  // Credentials come from the environment the daemon runs in, as for its repositories.
  childEnv: () => ({}),

  restore: {
    command: ['bucket', 'restore'],
    options: NAME_OUTPUT_TIME_SNAPSHOT,
    startByDefault: false,
    measuresRto: false,
    targetExample: 'e.g. /var/tmp/bucket-restore (a new directory; objects become files)',
    fieldsHint: 'give "time" (RFC 3339) or "snapshot", or nothing for the newest snapshot',
    check: snapshotOrTime('bucket'),
  },

  drill: {
    nameOf: (s) => s.source.name,
    run: async (repo, name, ctx) => (await import('./drill.js')).drillBucket(repo, name, ctx),
  },

  runbook: {
    what: (s) => `the objects under \`${settingsOf(s).location}\``,
    steps(s, { g, cmd, shell }) {
      const dir = `/var/tmp/bucket-restore-${s.name}`;
      const inv = restoreInvocation(s, { target: dir });
      return [
        '1. Create an empty bucket (or choose an empty prefix) to restore into; a restore never creates one and refuses one that holds objects.',
        '2. Restore the newest snapshot (or `--time T`, `--snapshot ID`) into it, each object with its content type and user metadata:',
        '',
        '   ```sh',
        `   ${g} bucket restore ${shell(s.name)} --to ${shell('s3:https://HOST/NEW-BUCKET/prefix')}`,
        '   ```',
        `3. Or write the objects as files into a new directory: \`${g} ${cmd(inv)}\`; one object alone with \`--object KEY\`.`,
        `4. Point the application at the restored bucket, or copy the objects back over \`${settingsOf(s).location}\` (\`--to\` it with \`--force\`).`,
      ];
    },
  },

  commands: { words: ['bucket'], load: () => import('./cli/bucket.js') },
};
