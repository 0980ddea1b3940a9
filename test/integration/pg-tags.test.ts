/**
 * A PostgreSQL source's tags all reach its snapshots (issue 15: the daemon passed only
 * the first). The daemon's backup job for a source with two tags runs against a
 * scratch cluster through the real CLI, and the stored snapshot carries both, beside
 * the `postgres:NAME` tag every base backup gets.
 */
import { rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { Catalog } from '../../src/daemon/catalog.js';
import { JobRunner, jobCommand } from '../../src/daemon/jobs.js';
import { cleanupTmp, runCli } from '../helpers.js';
import { postgresDir, ScratchCluster } from '../pg-cluster.js';

let cluster: ScratchCluster | undefined;
let base: string | undefined;
afterAll(async () => {
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
  cleanupTmp();
});

describe('a postgres source with two tags', () => {
  it('stores both on the snapshot its backup job takes', async () => {
    cluster = await ScratchCluster.create();
    await cluster.start();
    base = await postgresDir('lb-pgtags-');
    const repo = path.join(base, 'repo');
    const pw = path.join(base, 'pass');
    writeFileSync(pw, 'pg-tags\n');
    expect((await runCli(['init', '-r', repo, '--password-file', pw])).code).toBe(0);
    const text = [
      'repositories:',
      '  main:',
      `    stores: [${repo}]`,
      `    password_file: ${pw}`,
      'sources:',
      '  main:',
      '    kind: postgres',
      `    dsn: ${cluster.dsn}`,
      `    pgdata: ${cluster.data}`,
      '    tags: [nightly, offsite]',
      'server:',
      '  state_dir: state',
    ].join('\n');
    const file = path.join(base, 'lifeboat.yaml');
    writeFileSync(file, `${text}\n`);
    const config = parseConfig(text, file);
    const req = { kind: 'backup' as const, source: 'main', trigger: 'test' };
    expect(jobCommand(config, req).filter((a, i, all) => all[i - 1] === '--tag')).toEqual(['nightly', 'offsite']);

    const catalog = new Catalog(path.join(base, 'state'));
    try {
      const runner = new JobRunner(config, catalog);
      const job = await runner.wait(runner.submit(req).id);
      expect(job.status, catalog.log(job.id).map((l) => l.line).join('\n')).toBe('succeeded');
    } finally {
      catalog.close();
    }
    const list = await runCli(['-r', repo, '--password-file', pw, 'snapshots', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const snaps = JSON.parse(list.stdout) as Array<{ tags: string[]; source: { kind: string; name?: string } }>;
    expect(snaps).toHaveLength(1);
    expect(snaps[0]?.source).toEqual({ kind: 'postgres', name: 'main' });
    expect([...(snaps[0]?.tags ?? [])].sort()).toEqual(['nightly', 'offsite', 'postgres:main']);
  });
});
