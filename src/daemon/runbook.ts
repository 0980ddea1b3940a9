/**
 * lifeboat runbook: a disaster-recovery runbook in Markdown for this deployment,
 * written from lifeboat.yaml and what the catalog knows (newest backup, last drill).
 * Every command in it is one a person can paste during an outage.
 */
import * as path from 'node:path';
import type { LifeboatConfig, RepositoryConfig, SourceConfig } from '../config/config.js';
import { PROGRAM_VERSION } from '../repo/repository.js';
import { redact } from '../util/redact.js';
import type { BackupRow, DrillRow } from './catalog.js';
import { restoreArgs } from '../engine/restore-options.js';

export interface RunbookFacts {
  newestBackup: (source: string) => BackupRow | undefined;
  lastDrill: (source: string) => DrillRow | undefined;
}

function seconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return '—';
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** A command line from argv, each word quoted for a POSIX shell where it needs it. */
const cmd = (argv: readonly string[]) => argv.map((a) => shell(a)).join(' ');

const shell = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);

function locationLine(store: string): string {
  if (store.startsWith('s3:')) return `S3 bucket \`${store.slice(3)}\``;
  if (store.startsWith('azure:')) return `Azure container \`${store.slice(6)}\``;
  if (store.startsWith('rclone:')) return `rclone remote \`${store.slice(7)}\``;
  return `local or mounted disk \`${store}\``;
}

function repositorySection(r: RepositoryConfig, base: string): string[] {
  const out = [`### Repository \`${r.name}\``, ''];
  out.push(`Copies (${r.stores.length}; a write is durable once ${r.writeQuorum} hold it${r.appendOnly ? '; this client is append-only' : ''}):`, '');
  r.stores.forEach((s, i) => out.push(`${i + 1}. ${locationLine(s)}${i === 0 ? ' — read first' : ''}`));
  out.push('', `Password: ${r.passwordFile ? `the file \`${r.passwordFile}\` (keep a copy offline: without it nothing restores)` : 'given by LIFEBOAT_PASSWORD_FILE or LIFEBOAT_PASSWORD (keep a copy offline)'}.`, '');
  out.push('If the first copy is lost, any other restores on its own:', '', '```sh');
  out.push(`${base} -r ${r.name} check            # structure of every copy`);
  for (const s of r.stores.slice(1)) out.push(`lifeboat -r ${shell(s)} snapshots      # read this copy alone`);
  out.push(`${base} -r ${r.name} repair           # bring a copy that was away back in step`, '```', '');
  return out;
}

function restoreSteps(s: SourceConfig, base: string): string[] {
  const g = `${base} -r ${s.repository}`;
  if (s.kind === 'files') {
    return [
      '1. Pick the snapshot (newest first):',
      '',
      '   ```sh',
      `   ${g} snapshots --json | jq -r '.[] | select(.source.name == "${s.name}") | "\\(.time) \\(.short_id)"'`,
      '   ```',
      '2. Restore into a new directory (a restore never overwrites; `--delta` refreshes an older copy in place);',
      '   `latest` is the newest snapshot of this source, or give the SNAPSHOT_ID from step 1:',
      '',
      '   ```sh',
      `   ${g} ${cmd(restoreArgs(s, { target: `/var/tmp/restore-${s.name}` }))}`,
      '   ```',
      `3. Move the files into place: ${s.paths.map((p) => `\`${p}\``).join(', ')}.`,
    ];
  }
  if (s.kind === 'sqlite') {
    const file = s.path as string;
    return [
      '1. Stop the application that writes the database.',
      '2. Restore as of a moment (or `--latest`) into a new file; it is checked with `integrity_check`:',
      '',
      '   ```sh',
      `   ${g} ${cmd(restoreArgs(s, { target: `${file}.restored`, time: '2026-01-31T14:30:00Z' }))}`,
      '   ```',
      `3. Move it over the original: \`mv ${shell(`${file}.restored`)} ${shell(file)}\` (remove a stale \`${file}-wal\` first), then start the application.`,
      '4. A few tables only: add `--table NAME` (repeatable) and copy the rows you need.',
    ];
  }
  const dir = s.pgdata ? `${s.pgdata}.restored` : `/var/lib/postgresql/restore-${s.name}`;
  const port = dsnPort(s.dsn);
  return [
    '1. Stop the damaged server if it still runs.',
    '2. Restore the newest base backup and replay all archived WAL (add `--time 2026-01-31T14:30:00Z` to stop at a moment);',
    `   \`--start\` starts it, waits for recovery and promotion, checks it and prints the measured RTO; \`--keep-running\``,
    `   then leaves it running with its own settings on \`--port ${port}\`, where clients look (leave that out for a copy beside a server that still runs):`,
    '',
    '   ```sh',
    `   ${g} ${cmd(restoreArgs(s, { target: dir, port: Number(port), start: true, keepRunning: true }))}`,
    '   ```',
    `3. It runs as the data directory's owner with archiving off; \`pg_ctl -D ${shell(dir)} stop|start\` (as the postgres user) from here on.`,
    `4. If it is production from now on: follow the comment at the end of \`${dir}/postgresql.auto.conf\` (archiving on, replication settings back), restart it, and take a base backup at once (\`${g} pg backup --name ${s.name} --dsn …\`): restores follow its new timeline only from that backup.`,
    `5. Check: \`${g} pg verify --name ${s.name}\` restores into a scratch place and runs amcheck, without touching the server.`,
  ];
}

export function runbook(config: LifeboatConfig, facts: RunbookFacts, now = new Date()): string {
  const configPath = path.resolve(config.file);
  const base = `lifeboat --config ${shell(configPath)}`;
  const out: string[] = [
    '# Disaster-recovery runbook',
    '',
    `For the deployment configured in \`${configPath}\`. Written ${now.toISOString()} by lifeboat ${PROGRAM_VERSION}; regenerate it with \`lifeboat runbook --config ${shell(configPath)}\` after every change, and keep a printed copy away from the systems it describes.`,
    '',
    '## Before you start',
    '',
    '- Install lifeboat on the machine you restore to, on the PATH of root and of the postgres user (from its checkout: `npm ci && npm install -g .`, Node.js 20.6 or newer; or write the absolute path of `bin/lifeboat.js` where the commands below say `lifeboat`), and copy this configuration file and the repository password files to it. `lifeboat --config FILE config check` says whether everything it names is there.',
    '- Every restore writes to a new place and never overwrites; move the result into place when its checks pass.',
    '- Drill before you need it: `' + base + ' drill` restores each source into a scratch place, checks it and records the RTO.',
    '',
    '## Sources at a glance',
    '',
    '| source | kind | repository | RPO target | RTO target | newest backup | last drill | measured RTO |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const s of config.sources.values()) {
    const b = facts.newestBackup(s.name);
    const d = facts.lastDrill(s.name);
    out.push(`| ${s.name} | ${s.kind}${s.continuous ? ' (continuous)' : ''} | ${s.repository} | ${seconds(s.targets.rpoSeconds)} | ${seconds(s.targets.rtoSeconds)} | ${b ? b.time : 'none recorded'} | ${d ? `${d.time} ${d.ok ? 'passed' : 'FAILED'}` : 'none recorded'} | ${seconds(d?.rto_seconds)} |`);
  }
  out.push('', '## Where the copies live', '');
  for (const r of config.repositories.values()) out.push(...repositorySection(r, base));
  for (const s of config.sources.values()) {
    const d = facts.lastDrill(s.name);
    const b = facts.newestBackup(s.name);
    out.push(`## Restore \`${s.name}\` (${s.kind})`, '');
    const what = s.kind === 'files' ? s.paths.map((p) => `\`${p}\``).join(', ') : s.kind === 'sqlite' ? `\`${s.path}\`` : `the cluster at \`${redact(s.dsn ?? '')}\``;
    out.push(`- What: ${what}`);
    out.push(`- Copies: repository \`${s.repository}\` (see above)${s.continuous ? `; ${s.kind === 'postgres' ? 'WAL is streamed' : 'WAL frames are replicated'} continuously, so any second can be restored` : '; restorable to each backup'}`);
    out.push(`- Targets: RPO ${seconds(s.targets.rpoSeconds)}, RTO ${seconds(s.targets.rtoSeconds)}`);
    out.push(`- Newest backup: ${b ? `${b.time} (snapshot ${b.snapshot_id.slice(0, 8)})` : 'none recorded in the catalog'}`);
    if (d) {
      const within = s.targets.rtoSeconds !== undefined && d.rto_seconds !== null ? (d.rto_seconds <= s.targets.rtoSeconds ? ' — within target' : ' — OVER TARGET') : '';
      out.push(`- Last drill: ${d.time}, ${d.ok ? 'passed' : `FAILED${d.error ? ` (${d.error})` : ''}`}; measured RTO ${seconds(d.rto_seconds)}${within}, RPO ${seconds(d.rpo_seconds)}`);
    } else {
      out.push(`- Last drill: none recorded — run \`${base} -r ${s.repository} drill --source ${s.name}\``);
    }
    out.push('', ...restoreSteps(s, base), '');
  }
  out.push('## After the restore', '', `- Take a fresh backup at once: \`${base} -r REPOSITORY backup ...\` or \`POST /api/v1/sources/NAME/backup\`.`, '- Run a drill of every restored source and record what took longest, for the next version of this runbook.', '');
  // Every line may quote configuration (DSNs, drill errors): one redaction over all of it.
  return redact(out.join('\n'));
}

/** The port of a PostgreSQL connection string (URL form), else PostgreSQL's default. */
function dsnPort(dsn: string | undefined): string {
  try {
    return (dsn && new URL(dsn).port) || '5432';
  } catch {
    return '5432';
  }
}
