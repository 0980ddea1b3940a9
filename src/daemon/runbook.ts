/**
 * lifeboat runbook: a disaster-recovery runbook in Markdown for this deployment,
 * written from lifeboat.yaml and what the catalog knows (newest backup, last drill).
 * Every command in it is one a person can paste during an outage.
 */
import * as path from 'node:path';
import type { GroupConfig, LifeboatConfig, RepositoryConfig, SourceConfig } from '../config/config.js';
import { PROGRAM_VERSION } from '../repo/repository.js';
import { redact } from '../util/redact.js';
import type { BackupRow, DrillRow, GroupPointRow } from './catalog.js';
import { toArgv, type Invocation } from '../engine/invocation.js';
import { sourceKind } from '../sources/registry.js';

export interface RunbookFacts {
  newestBackup: (source: string) => BackupRow | undefined;
  lastDrill: (source: string) => DrillRow | undefined;
  /** The newest point of a consistency group the catalog knows. */
  newestPoint?: (group: string) => GroupPointRow | undefined;
}

/** A consistency group back to one point: every member with `group restore` (docs/groups.md). */
function groupSection(g: GroupConfig, base: string, newest: GroupPointRow | undefined, restoreRoot: string): string[] {
  const dir = path.join(restoreRoot, g.name);
  const targets = g.members.map((m) => `--target ${shell(`${m}=${path.join(dir, m)}`)}`).join(' ');
  const g0 = `${base} -r ${g.repository}`;
  return [
    `## Restore group \`${g.name}\` to one moment`,
    '',
    `- Members: ${g.members.join(', ')}. Restore them together, to one point: restored one by one, to their own newest moments, they do not agree with each other.`,
    `- Newest point: ${newest ? `${newest.id} of ${newest.time} (writes held ${newest.hold_ms} ms)` : 'none recorded in the catalog'}`,
    '',
    '1. Choose the point: the newest at or before the moment to return to.',
    '',
    '   ```sh',
    `   ${g0} group points ${shell(g.name)}`,
    '   ```',
    '',
    '2. Print the plan (each member\'s mechanism, target and position) and change nothing; every target must be new or empty, in a directory that exists:',
    '',
    '   ```sh',
    `   mkdir -p ${shell(dir)}`,
    `   ${g0} group restore ${shell(g.name)} --time 'YYYY-MM-DDTHH:MM:SSZ' ${targets} --dry-run`,
    '   ```',
    '',
    '3. Run it without `--dry-run` (or with `--point ID`). One unusable target, or a member whose history no longer reaches the point, and nothing starts.',
    '',
  ];
}

function seconds(s: number | null | undefined): string {
  if (s === null || s === undefined) return '—';
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** A command line from an invocation, each word quoted for a POSIX shell where it needs it. */
const cmd = (inv: Invocation) => toArgv(inv).map((a) => shell(a)).join(' ');

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

/** The numbered restore steps: the kind of the source writes them. */
function restoreSteps(s: SourceConfig, base: string): string[] {
  return sourceKind(s.kind).runbook.steps(s, { g: `${base} -r ${s.repository}`, cmd, shell });
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
    const kind = sourceKind(s.kind);
    out.push(`- What: ${kind.runbook.what(s)}`);
    const continuously = s.continuous && kind.continuous ? `; ${kind.continuous.phrase} continuously, so any second can be restored` : '; restorable to each backup';
    out.push(`- Copies: repository \`${s.repository}\` (see above)${continuously}`);
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
  // Restored where API restores go when the daemon has a place for them; /var/tmp otherwise.
  const restoreRoot = config.server.restoreRoots[0] ?? '/var/tmp/lifeboat-restore';
  for (const g of config.groups.values()) out.push(...groupSection(g, base, facts.newestPoint?.(g.name), restoreRoot));
  out.push('## After the restore', '', `- Take a fresh backup at once: \`${base} -r REPOSITORY backup ...\` or \`POST /api/v1/sources/NAME/backup\`.`, '- Run a drill of every restored source and record what took longest, for the next version of this runbook.', '');
  // Every line may quote configuration (DSNs, drill errors): one redaction over all of it.
  return redact(out.join('\n'));
}
