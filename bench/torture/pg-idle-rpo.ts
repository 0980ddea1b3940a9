/**
 * An idle PostgreSQL cluster under the real daemon (`lifeboat serve`, default
 * check_interval) with `rpo: 1m`, for N minutes: does it ever claim a breach? Two
 * sources on one scratch cluster: `streamed` (stream: true) and `pushed` (the server's
 * archive_command with archive_timeout = 30 s, watched through pg_stat_archiver).
 * Reported per source: the largest RPO /metrics showed, how long it stayed over the
 * target, the lowest lifeboat_archive_up, and the webhooks the daemon sent.
 *
 *   npx tsc -p tsconfig.json && npx tsx bench/torture/pg-idle-rpo.ts --minutes 10
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { webhookReceiver } from '../../test/daemon-helpers.js';
import { CLI, runCli } from '../../test/helpers.js';
import { archivedCluster, freePort, PG_BIN } from '../../test/pg-cluster.js';
import { waitUntil } from '../../test/pg-streamer.js';
import { minutesArg, sleep } from './pg-stream-common.js';

const minutes = minutesArg(10);
const SOURCES = ['streamed', 'pushed'] as const;
const TARGET_S = 60;
const SAMPLE_MS = 5000;

const { base, cluster } = await archivedCluster('lb-torture-pgidle-');
const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-torture-pgidle-daemon-'));
const receiver = await webhookReceiver<{ event: string; source: string | null; message: string }>();
const notices = receiver.bodies;
const port = await freePort();
writeFileSync(path.join(dir, 'pass'), 'idle\n');
const init = await runCli(['init', '-r', path.join(dir, 'repo'), '--password-file', path.join(dir, 'pass')]);
if (init.code !== 0) throw new Error(init.stderr);
writeFileSync(
  path.join(dir, 'lifeboat.yaml'),
  [
    'repositories:',
    `  main: { stores: [${path.join(dir, 'repo')}], password_file: ${path.join(dir, 'pass')} }`,
    'sources:',
    `  streamed: { kind: postgres, dsn: "${cluster.dsn}", stream: true, bin_dir: ${PG_BIN}, targets: { rpo: 1m } }`,
    `  pushed: { kind: postgres, dsn: "${cluster.dsn}", targets: { rpo: 1m } }`,
    'notifications:',
    `  ops: { url: "${receiver.url}/" }`,
    'server:',
    `  listen: 127.0.0.1:${port}`,
    '  state_dir: state',
  ].join('\n'),
);
// Some data, then nothing: the server is idle from here on.
await cluster.query('create table t (id int)');
await cluster.query('insert into t select generate_series(1, 100)');
await cluster.query("alter system set archive_timeout = '30s'");
await cluster.query('select pg_reload_conf()');
await cluster.query('select pg_switch_wal()');
const daemon = spawn(process.execPath, [CLI, '--config', path.join(dir, 'lifeboat.yaml'), 'serve'], { stdio: ['ignore', 'ignore', 'pipe'] });
let daemonLog = '';
daemon.stderr?.on('data', (d: Buffer) => (daemonLog = (daemonLog + d.toString()).slice(-8000)));

const metric = (text: string, name: string, source: string) => {
  const m = new RegExp(`^${name}\\{source="${source}"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};
const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

try {
  await waitUntil(`the daemon and both archives up (${daemonLog})`, async () => {
    const text = await scrape().catch(() => '');
    return SOURCES.every((s) => metric(text, 'lifeboat_archive_up', s) === 1);
  }, 120_000, 500);
  const started = Date.now();
  const per = Object.fromEntries(SOURCES.map((s) => [s, { maxRpo: 0, overTargetSamples: 0, minUp: 1, samples: 0, rpoNull: 0 }]));
  while (Date.now() - started < minutes * 60_000) {
    const text = await scrape();
    for (const s of SOURCES) {
      const p = per[s]!;
      const rpo = metric(text, 'lifeboat_rpo_seconds', s);
      p.samples++;
      if (rpo === undefined) p.rpoNull++;
      else {
        p.maxRpo = Math.max(p.maxRpo, rpo);
        if (rpo > TARGET_S) p.overTargetSamples++;
      }
      p.minUp = Math.min(p.minUp, metric(text, 'lifeboat_archive_up', s) ?? 0);
    }
    if (process.argv.includes('--verbose')) console.log(`${new Date().toISOString()} ${SOURCES.map((s) => `${s}: rpo ${metric(text, 'lifeboat_rpo_seconds', s)} up ${metric(text, 'lifeboat_archive_up', s)}`).join(', ')}`);
    await sleep(SAMPLE_MS);
  }
  const report = {
    minutes,
    targetSeconds: TARGET_S,
    sampleEverySeconds: SAMPLE_MS / 1000,
    sources: Object.fromEntries(SOURCES.map((s) => [s, { ...per[s], maxRpo: Number(per[s]!.maxRpo.toFixed(1)), webhooks: notices.filter((n) => n.source === s).map((n) => `${n.event}: ${n.message}`) }])),
  };
  console.log(JSON.stringify(report, null, 1));
} finally {
  if (daemon.exitCode === null) {
    const closed = new Promise((r) => daemon.once('close', r));
    daemon.kill('SIGTERM');
    await closed;
  }
  await receiver.close();
  await cluster.destroy();
  for (const d of [dir, base]) rmSync(d, { recursive: true, force: true });
}
