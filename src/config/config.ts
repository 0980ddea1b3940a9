/**
 * lifeboat.yaml: one file configures the CLI's named repositories and the daemon
 * (sources, schedules, notifications, server). Every key is declared once in the
 * option model (model.ts, and src/sources/<kind>/options.ts for a kind's own keys),
 * read through it (reader.ts) and turned here into the typed records the rest of
 * Lifeboat uses. A bad file fails with the key and line at fault and a hint;
 * docs/configuration.md's key reference is generated from the model.
 *
 *   repositories:
 *     main:
 *       stores: [/srv/lifeboat, s3:https://minio.example:9000/backups/main]
 *       write_quorum: 2            # durable once 2 destinations stored it (default: all)
 *       limit_upload: 20480        # KiB/s (optional)
 *       append_only: false
 *       password_file: /etc/lifeboat/main.pass
 *       key_command: age -d -i /etc/lifeboat/age.key   # instead of a password (docs/keys.md)
 *   sources:
 *     orders:   { kind: postgres, repository: main, dsn: postgres://..., stream: true,
 *                 targets: { rpo: 5min, rto: 30min }, retention: { keep_daily: 14 } }
 *   schedules:
 *     nightly:  { run: backup, sources: [orders], cron: "0 2 * * *", timezone: Europe/Berlin }
 *   groups:
 *     engram:   { members: [orders, cache], freeze: [app-ctl, freeze], thaw: [app-ctl, thaw], max_hold: 200ms }
 *   notifications:
 *     ops:      { url: https://hooks.example/x, format: slack, on: [failure, rpo_breach, archive_down, recovery], repeat: 4h }
 *   server:     { listen: 127.0.0.1:8470, state_dir: /var/lib/lifeboat }
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { cronOf } from '../daemon/scheduler.js';
import { LineCounter, parseDocument, isScalar, isSeq, type Node } from 'yaml';
import { LifeboatError, errno, isLifeboatError } from '../errors.js';
import { durationMs, type Duration } from '../util/duration.js';
import { findSourceKind, sourceKinds } from '../sources/registry.js';
import { CHECK_REDIS_COMMANDS, JOB_KINDS, NOTIFY_EVENTS, groupCheckOptions, groupOptions, snapshotHookOptions, notificationOptions, repositoryOptions, scheduleOptions, SECTIONS, serverOptions, sourceCommonOptions } from './model.js';
import { Reader } from './reader.js';
import type { GraphDeclaration } from '../sources/graph/options.js';

export { JOB_KINDS, NOTIFY_EVENTS } from './model.js';
/** A kind of source's name: the kinds are those registered in src/sources/registry.ts. */
export type SourceKind = string;

export interface RepositoryConfig {
  name: string;
  stores: string[];
  writeQuorum: number;
  limitUploadKiB?: number;
  limitDownloadKiB?: number;
  appendOnly: boolean;
  passwordFile?: string;
  /** Opens with command key slots instead of a password: argv, or words to split. */
  keyCommand?: string | string[];
}

export interface RetentionConfig {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** As written (checked against the one duration grammar): forget's --keep-within takes the same text. */
  keepWithin?: string;
  keepLogsWithin?: string;
}

export interface SourceConfig {
  name: string;
  kind: SourceKind;
  repository: string;
  /** files: what to back up. */
  paths: string[];
  exclude: string[];
  /** postgres */
  dsn?: string;
  /** postgres: a 0600 file whose first line is the password (kept out of dsn, argv and logs). */
  passwordFile?: string;
  pgdata?: string;
  binDir?: string;
  /** postgres: queries a restored and started copy must pass (first value true); restores and the runbook run them. */
  checks?: string[];
  /** sqlite: the database file. */
  path?: string;
  /** sqlite, postgres: the graph its tables hold, which backups measure and drills check (sources/graph/options.ts). */
  graph?: GraphDeclaration;
  /** redis: where the server is (redis://[user@]host:port), never with a password (password_file or the environment). */
  url?: string;
  /**
   * A kind's own keys that no other kind shares, as its options.ts parsed them: the
   * kind reads them back with its own schema (oplog's record format, for one), so a
   * new kind adds no field here.
   */
  settings?: Readonly<Record<string, unknown>>;
  /** Continuous log archiving: PostgreSQL WAL streaming or SQLite replication, kept alive by the daemon. */
  continuous: boolean;
  /** sqlite replication: how often frames are shipped; as written, checked against the duration grammar (replicate's --interval reads the same text). */
  interval?: string;
  snapshotInterval?: string;
  /** sqlite replication: how often the stored history is compared with the live database. */
  verifyInterval?: string;
  tags: string[];
  retention?: RetentionConfig;
  targets: { rpoSeconds?: number; rtoSeconds?: number };
}

export type ScheduledJobKind = (typeof JOB_KINDS)[number];

export interface ScheduleConfig {
  name: string;
  run: ScheduledJobKind;
  /** Sources the job runs for (backup, drill, forget); empty for repository jobs and group schedules. */
  sources: string[];
  /** `run: backup` of consistency groups (a `group backup` per group); empty otherwise. */
  groups: string[];
  /** check and prune work on a repository. */
  repository?: string;
  cron: string;
  timezone?: string;
  jitterSeconds: number;
  /** Run once at start when a fire time passed while the daemon was down. */
  catchUp: boolean;
  /** check: share of packs read, e.g. "5%". */
  readDataSubset?: string;
}

/**
 * A consistency group (docs/groups.md): member sources whose positions are recorded
 * while `freeze` holds writes, `thaw` runs whatever happens.
 */
export interface GroupConfig {
  name: string;
  members: string[];
  /** The members' repository (they share one): the group's points are stored there. */
  repository: string;
  freeze?: GroupHook;
  thaw?: GroupHook;
  maxHoldMs: number;
  /** Files members with a filesystem snapshot hook, by member name (the rest are copied while frozen). */
  snapshots: Map<string, SnapshotHook>;
  /** `group drill`'s cross-member checks (engine/group/checks.ts); absent when none are declared. */
  checks?: GroupCheck[];
}

/**
 * A freeze or thaw (docs/groups.md): a command (argv, never run by a shell), an HTTP
 * request, or `builtin`: each member holds its own writes (Redis CLIENT PAUSE WRITE,
 * SQLite's write lock; PostgreSQL only its restore point).
 */
export type GroupHook = { command: string[] } | { http: HttpHook } | 'builtin';

export interface HttpHook {
  url: string;
  method: 'POST' | 'PUT' | 'GET' | 'DELETE';
  /** `Name: value` lines sent as headers (a token, say); read before the freeze, never logged. */
  headersFile?: string;
  /** Limit of one request; never more than what is left of max_hold (freeze) or the thaw limit. */
  timeoutMs?: number;
}

/** A hook in a few words for a summary line: the command's program, the request's method and origin (never its path, query or headers). */
export function describeHook(h: GroupHook): string {
  if (h === 'builtin') return 'the members\' built-in holds';
  if ('command' in h) return `command ${h.command[0] ?? ''}`;
  let origin = '';
  try {
    origin = new URL(h.http.url).origin;
  } catch {
    origin = '?';
  }
  return `HTTP ${h.http.method} ${origin}`;
}

/** A files member's filesystem snapshot: `{point}` in a word or in `path` is the point id. */
export interface SnapshotHook {
  create: string[];
  release: string[];
  /** The directory to back up; undefined: the last line `create` printed. */
  path?: string;
}

/** What one member answers for a check: a set of strings, read from its restored copy. */
export type CheckQuery =
  | { member: string; kind: 'redis'; redis: string[]; match?: string }
  | { member: string; kind: 'sql'; sql: string; database?: string; match?: string }
  | { member: string; kind: 'files'; files: string; match?: string };

/** Every value `every` gives must be among the values `in` gives. */
export interface GroupCheck {
  name: string;
  every: CheckQuery;
  in: CheckQuery;
}

/** 200 ms: see groupOptions in model.ts. */
export const DEFAULT_MAX_HOLD_MS = 200;

export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

export interface NotificationConfig {
  name: string;
  url: string;
  format: 'json' | 'slack';
  on: NotifyEvent[];
  retries: number;
  timeoutSeconds: number;
  headers: Record<string, string>;
  /** While an incident stays open, remind this often (seconds); null: never. */
  repeatSeconds: number | null;
}

/**
 * Reminders of an open incident: 4 h, Alertmanager's default repeat_interval, often
 * enough that an incident nobody fixed is not forgotten overnight, rare enough that a
 * chat channel does not learn to ignore it.
 */
export const DEFAULT_REPEAT_SECONDS = 4 * 3600;

export interface ServerConfig {
  host: string;
  port: number;
  stateDir: string;
  tls?: { cert: string; key: string };
  /** How often RPO is compared with the targets, in seconds. */
  checkIntervalSeconds: number;
  /** Finished jobs and their logs older than this are dropped from the catalog, in seconds. */
  keepJobsSeconds: number;
  /** Absolute directories API restores may write below; none: API restores are admin-only. */
  restoreRoots: string[];
  /** Audit rows older than `seconds` are dropped, and never more than `rows` are kept. */
  keepAudit: { seconds?: number; rows: number };
  /** Bearer token /metrics asks for when the daemon listens beyond loopback. */
  metricsToken?: string;
  /** Or a file holding it (read when the daemon starts; see daemon/listen.ts). */
  metricsTokenFile?: string;
}

/**
 * The audit log's bound: 90 days answers "who restored what last quarter"; 100 000
 * rows (a few tens of MB) caps what a flood of distinct failing calls can leave.
 */
export const DEFAULT_KEEP_AUDIT = { seconds: 90 * 86400, rows: 100_000 };

export interface LifeboatConfig {
  file: string;
  repositories: Map<string, RepositoryConfig>;
  sources: Map<string, SourceConfig>;
  schedules: Map<string, ScheduleConfig>;
  groups: Map<string, GroupConfig>;
  notifications: Map<string, NotificationConfig>;
  server: ServerConfig;
}


export function loadConfig(file: string): LifeboatConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new LifeboatError('CONFIG_INVALID', `cannot read the configuration ${file}: ${errno(err) ?? String(err)}`, {
      hint: 'check --config / LIFEBOAT_CONFIG',
    });
  }
  return parseConfig(text, file);
}

const seconds = (d: Duration): number => durationMs(d) / 1000;

export function parseConfig(text: string, file: string): LifeboatConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0] as { message: string; linePos?: Array<{ line: number }> };
    throw new LifeboatError('CONFIG_INVALID', `${file}:${e.linePos?.[0]?.line ?? '?'}: not valid YAML: ${e.message.split('\n')[0]}`, {
      hint: 'fix the YAML syntax (indentation, a missing colon, a duplicate key)',
    });
  }
  const r = new Reader(file, lines);
  const config: LifeboatConfig = {
    file,
    repositories: new Map(),
    sources: new Map(),
    schedules: new Map(),
    groups: new Map(),
    notifications: new Map(),
    server: { host: '127.0.0.1', port: 8470, stateDir: 'lifeboat-state', checkIntervalSeconds: 30, keepJobsSeconds: 90 * 86400, restoreRoots: [], keepAudit: { ...DEFAULT_KEEP_AUDIT } },
  };
  const root = doc.contents;
  if (root === null || root === undefined) return config;
  const sections = new Map<string, [Node | null, Node]>();
  for (const pair of r.map(root, 'the file', 'start with `repositories:`').items) {
    const key = String((pair.key as { value?: unknown }).value);
    if (!(SECTIONS as readonly string[]).includes(key)) r.fail(pair.key as Node, `unknown key "${key}" at the top level`, `known keys: ${SECTIONS.join(', ')}`);
    sections.set(key, [pair.value as Node | null, pair.key as Node]);
  }
  const section = (name: string): Array<[string, Node, Node]> => {
    const s = sections.get(name);
    if (!s) return [];
    const map = r.map(s[0] ?? s[1], `"${name}"`);
    return map.items.map((pair) => {
      const key = pair.key as Node;
      return [r.name(key, name.replace(/s$/, '')), (pair.value as Node | null) ?? key, key];
    });
  };

  for (const [name, node, key] of section('repositories')) config.repositories.set(name, readRepository(r, name, node, key));
  for (const [name, node, key] of section('sources')) config.sources.set(name, readSource(r, name, node, key, config));
  // Groups before schedules: a schedule may name a group.
  for (const [name, node, key] of section('groups')) config.groups.set(name, readGroup(r, name, node, key, config));
  for (const [name, node, key] of section('schedules')) config.schedules.set(name, readSchedule(r, name, node, key, config));
  for (const [name, node, key] of section('notifications')) config.notifications.set(name, readNotification(r, name, node, key));
  const server = sections.get('server');
  if (server) readServer(r, server[0] ?? server[1], config.server);
  return config;
}

function readRepository(r: Reader, name: string, node: Node, key: Node): RepositoryConfig {
  const { values: v, nodes } = r.object(node, repositoryOptions(), `in repository "${name}"`, { node: key, label: `repository "${name}"`, name });
  if (v.write_quorum !== undefined && v.write_quorum > v.stores.length) r.fail(nodes.get('write_quorum'), `"write_quorum" must be a whole number from 1 to ${v.stores.length}`);
  return {
    name,
    stores: v.stores,
    writeQuorum: v.write_quorum ?? v.stores.length,
    ...(v.limit_upload ? { limitUploadKiB: v.limit_upload } : {}),
    ...(v.limit_download ? { limitDownloadKiB: v.limit_download } : {}),
    appendOnly: v.append_only ?? false,
    ...(v.password_file !== undefined ? { passwordFile: v.password_file } : {}),
    ...(v.key_command !== undefined ? { keyCommand: v.key_command } : {}),
  };
}

/** The text a duration key was written as (the child that receives it parses the same grammar). */
const written = (nodes: Map<string, Node>, key: string): string => String((nodes.get(key) as { value?: unknown }).value).trim();

function readSource(r: Reader, name: string, node: Node, key: Node, config: LifeboatConfig): SourceConfig {
  const map = r.map(node, `"${name}" in sources`);
  const kindNode = map.get('kind', true) as Node | undefined;
  const kindNames = sourceKinds().map((k) => k.name).join(', ');
  if (kindNode === undefined) r.fail(key, `source "${name}" needs "kind"`, `kind: ${kindNames}`);
  const kindValue = isScalar(kindNode) ? kindNode.value : undefined;
  const sourceKind = typeof kindValue === 'string' ? findSourceKind(kindValue) : undefined;
  if (!sourceKind) r.fail(kindNode, `"kind" of source "${name}" must be one of ${kindNames}`);
  const kind = sourceKind.name;
  // The common keys keep their static types here; the kind's own keys are typed in
  // its folder, where `fields` reads them.
  const schema = sourceCommonOptions().extend(sourceKind.options.shape) as unknown as ReturnType<typeof sourceCommonOptions>;
  const { values: v, nodes } = r.object(map, schema, `in ${kind} source "${name}"`, { node: key, label: `${kind} source "${name}"`, name });
  let repository: string;
  if (v.repository === undefined) {
    if (config.repositories.size !== 1) r.fail(key, `source "${name}" needs "repository"`, 'name one of the repositories defined under `repositories:`');
    repository = [...config.repositories.keys()][0] as string;
  } else {
    repository = v.repository;
    if (!config.repositories.has(repository)) {
      r.fail(nodes.get('repository'), `source "${name}" names repository "${repository}", which is not defined`, `defined: ${[...config.repositories.keys()].join(', ') || 'none'}`);
    }
  }
  const source: SourceConfig = { name, kind, repository, paths: [], exclude: [], continuous: false, tags: v.tags ?? [], targets: {} };
  // The kind's own keys, as its folder says (src/sources/<kind>/options.ts).
  try {
    Object.assign(source, sourceKind.fields(v));
  } catch (err) {
    // A kind's cross-checks of its keys (a graph's references): reported at the source's line.
    if (isLifeboatError(err, 'CONFIG_INVALID')) r.fail(key, `source "${name}": ${err.message}`, err.hint);
    throw err;
  }
  if (v.targets?.rpo) source.targets.rpoSeconds = seconds(v.targets.rpo);
  if (v.targets?.rto) source.targets.rtoSeconds = seconds(v.targets.rto);
  if (v.retention) {
    const ret: RetentionConfig = {};
    const t = v.retention;
    if (t.keep_last !== undefined) ret.keepLast = t.keep_last;
    if (t.keep_hourly !== undefined) ret.keepHourly = t.keep_hourly;
    if (t.keep_daily !== undefined) ret.keepDaily = t.keep_daily;
    if (t.keep_weekly !== undefined) ret.keepWeekly = t.keep_weekly;
    if (t.keep_monthly !== undefined) ret.keepMonthly = t.keep_monthly;
    if (t.keep_yearly !== undefined) ret.keepYearly = t.keep_yearly;
    if (t.keep_within !== undefined) ret.keepWithin = written(nodes, 'retention.keep_within');
    if (t.keep_logs_within !== undefined) ret.keepLogsWithin = written(nodes, 'retention.keep_logs_within');
    source.retention = ret;
  }
  return source;
}

function readSchedule(r: Reader, name: string, node: Node, key: Node, config: LifeboatConfig): ScheduleConfig {
  const { values: v, nodes } = r.object(node, scheduleOptions(), `in schedule "${name}"`, { node: node ?? key, label: `schedule "${name}"`, name });
  const { run, cron, timezone } = v;
  // croner would take a sixth field as seconds ("0 0 2 * * *" is 02:00:00, not a
  // five-field line with an extra word); the docs describe five fields, so only those.
  const fields = cron.trim().split(/\s+/).length;
  if (fields !== 5) r.fail(nodes.get('cron'), `schedule "${name}": cron "${cron}" has ${fields} fields, not 5`, 'cron: "minute hour day month weekday", e.g. "30 2 * * *" (no seconds field)');
  try {
    cronOf({ cron, ...(timezone ? { timezone } : {}) }).nextRun();
  } catch (err) {
    r.fail(nodes.get(timezone !== undefined && /time ?zone/i.test(String(err)) ? 'timezone' : 'cron'), `schedule "${name}": ${(err as Error).message}`, 'cron: "minute hour day month weekday", e.g. "*/15 * * * *"; timezone: an IANA name such as Europe/Berlin');
  }
  if (timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: timezone });
    } catch {
      r.fail(nodes.get('timezone'), `"${timezone}" is not a time zone`, 'use an IANA name such as UTC or Europe/Berlin');
    }
  }
  const groups = v.groups ?? [];
  if (groups.length > 0) {
    if (run !== 'backup' && run !== 'drill') r.fail(nodes.get('groups'), `schedule "${name}" (${run}) names groups; only run: backup (a capture) and run: drill take a group`, 'a group schedule is run: backup or run: drill with groups: [NAME]');
    if (v.sources !== undefined) r.fail(nodes.get('sources'), `schedule "${name}" names both sources and groups`, 'give a group schedule of its own: one schedule backs up sources or captures groups');
    const defined = [...config.groups.keys()];
    for (const g of groups) if (!defined.includes(g)) r.fail(nodes.get('groups'), `schedule "${name}" names group "${g}", which is not defined`, `defined: ${defined.join(', ') || 'none (add a groups: section)'}`);
    return { name, run, sources: [], groups, cron, ...(timezone ? { timezone } : {}), jitterSeconds: v.jitter ? seconds(v.jitter) : 0, catchUp: v.catch_up ?? true };
  }
  const sources = v.sources ?? [];
  for (const s of sources) {
    if (!config.sources.has(s)) r.fail(nodes.get('sources'), `schedule "${name}" names source "${s}", which is not defined`, `defined: ${[...config.sources.keys()].join(', ') || 'none'}`);
  }
  const repository = v.repository;
  if (repository !== undefined && !config.repositories.has(repository)) r.fail(nodes.get('repository'), `schedule "${name}" names repository "${repository}", which is not defined`);
  const repoJob = run === 'check' || run === 'prune' || run === 'rotate';
  if (repoJob && repository === undefined && config.repositories.size !== 1) r.fail(node, `schedule "${name}" (${run}) needs "repository"`);
  if (!repoJob && sources.length === 0 && config.sources.size === 0) r.fail(node, `schedule "${name}" (${run}) has no sources to run for`, 'define sources, or list them with `sources:`');
  if (run === 'forget') {
    const without = (sources.length > 0 ? sources : [...config.sources.keys()]).filter((n) => !config.sources.get(n)?.retention);
    if (sources.length > 0 && without.length > 0) r.fail(nodes.get('sources'), `schedule "${name}" (forget) names source "${without[0]}", which has no retention policy`, 'add retention: { keep_daily: 7, ... } to the source');
    if (sources.length === 0 && without.length === config.sources.size) r.fail(node, `schedule "${name}" (forget): no source has a retention policy`, 'add retention: to the sources it should thin out');
  }
  return {
    name,
    run,
    // No list: every source (backup, drill), every source with a retention policy (forget).
    sources: repoJob ? [] : sources.length > 0 ? sources : [...config.sources.keys()].filter((n) => run !== 'forget' || config.sources.get(n)?.retention),
    groups: [],
    ...(repoJob ? { repository: repository ?? ([...config.repositories.keys()][0] as string) } : {}),
    cron,
    ...(timezone ? { timezone } : {}),
    jitterSeconds: v.jitter ? seconds(v.jitter) : 0,
    catchUp: v.catch_up ?? true,
    ...(v.read_data_subset ? { readDataSubset: v.read_data_subset } : {}),
  };
}

function readGroup(r: Reader, name: string, node: Node, key: Node, config: LifeboatConfig): GroupConfig {
  const { values: v, nodes } = r.object(node, groupOptions(), `in group "${name}"`, { node: node ?? key, label: `group "${name}"`, name });
  const members = v.members;
  if (members.length === 0) r.fail(nodes.get('members'), `group "${name}" has no members`, 'members: [a, b] names sources defined under `sources:`');
  const seen = new Set<string>();
  for (const m of members) {
    if (!config.sources.has(m)) r.fail(nodes.get('members'), `group "${name}" names source "${m}", which is not defined`, `defined: ${[...config.sources.keys()].join(', ') || 'none'}`);
    if (seen.has(m)) r.fail(nodes.get('members'), `group "${name}" names source "${m}" twice`);
    seen.add(m);
  }
  const repositories = [...new Set(members.map((m) => (config.sources.get(m) as SourceConfig).repository))];
  if (repositories.length > 1) r.fail(nodes.get('members'), `the members of group "${name}" are backed up to different repositories (${repositories.join(', ')})`, 'a group point is stored in one repository: give its members the same `repository:`');
  if ((v.freeze === undefined) !== (v.thaw === undefined)) r.fail(nodes.get(v.freeze === undefined ? 'thaw' : 'freeze') ?? key, `group "${name}" needs both "freeze" and "thaw", or neither`, 'a freeze without a thaw would leave writes held');
  if ((v.freeze === 'builtin') !== (v.thaw === 'builtin')) r.fail(nodes.get('thaw') ?? key, `group "${name}": "freeze: builtin" goes with "thaw: builtin"`, 'the built-in holds are released by their own thaw; use builtin for both, or commands or HTTP requests for both');
  // Writes held for more than an hour are an outage, not a freeze (and Node's timers stop at 24.8 days).
  const maxHoldMs = v.max_hold ? durationMs(v.max_hold) : DEFAULT_MAX_HOLD_MS;
  if (maxHoldMs > 3_600_000) r.fail(nodes.get('max_hold'), `"max_hold" of group "${name}" must be at most 1h`, 'e.g. max_hold: 200ms');
  const hook = (which: 'freeze' | 'thaw'): GroupHook | undefined => {
    const h = v[which];
    if (h === undefined || h === 'builtin') return h;
    if (Array.isArray(h)) return { command: h };
    // A password in the URL would be printed wherever the URL is; fetch refuses one anyway.
    if (/^https?:\/\/[^/]*@/.test(h.http.url)) r.fail(nodes.get(which), `the ${which} URL of group "${name}" carries credentials`, 'put them in a headers_file (e.g. Authorization: Basic ...), never in the URL');
    const http: HttpHook = { url: h.http.url, method: h.http.method ?? 'POST' };
    if (h.http.headers_file !== undefined) http.headersFile = h.http.headers_file;
    if (h.http.timeout !== undefined) {
      http.timeoutMs = durationMs(h.http.timeout);
      if (http.timeoutMs < 1 || http.timeoutMs > 60_000) r.fail(nodes.get(which), `the ${which} timeout of group "${name}" must be from 1ms to 1min`, 'e.g. timeout: 2s (a freeze is also limited by max_hold)');
    }
    return { http };
  };
  const snapshots = new Map<string, SnapshotHook>();
  const snapNode = nodes.get('snapshots');
  if (snapNode !== undefined) {
    for (const pair of r.map(snapNode, `"snapshots" of group "${name}"`).items) {
      const memberNode = pair.key as Node;
      const member = String((memberNode as { value?: unknown }).value);
      if (!members.includes(member)) r.fail(memberNode, `"snapshots" of group "${name}" names "${member}", which is not one of its members`, `members: ${members.join(', ')}`);
      if ((config.sources.get(member) as SourceConfig).kind !== 'files') r.fail(memberNode, `"snapshots" of group "${name}": "${member}" is not a files source`, 'a snapshot hook makes a filesystem snapshot: only files members take one');
      const { values: sv } = r.object((pair.value as Node | null) ?? memberNode, snapshotHookOptions(), `in the snapshot hook of "${member}" in group "${name}"`, { node: memberNode, label: `snapshot hook "${member}"`, name });
      snapshots.set(member, { create: sv.create, release: sv.release, ...(sv.path !== undefined ? { path: sv.path } : {}) });
    }
  }
  if (v.freeze === 'builtin') {
    const unheld = members.find((m) => !['postgres', 'sqlite', 'redis'].includes((config.sources.get(m) as SourceConfig).kind));
    if (unheld !== undefined) r.fail(nodes.get('freeze'), `group "${name}": "freeze: builtin" cannot hold the writes of "${unheld}" (${(config.sources.get(unheld) as SourceConfig).kind})`, 'only postgres, sqlite and redis have built-in holds; freeze the application with a command or an HTTP request instead');
  }
  const freeze = hook('freeze');
  const thaw = hook('thaw');
  return {
    name,
    members,
    repository: repositories[0] as string,
    ...(freeze ? { freeze } : {}),
    ...(thaw ? { thaw } : {}),
    maxHoldMs,
    snapshots,
    ...(nodes.has('checks') ? { checks: readGroupChecks(r, name, nodes.get('checks'), members, config) } : {}),
  };
}

/** Which query each kind of member answers. */
const QUERY_OF_KIND: Record<string, CheckQuery['kind']> = { redis: 'redis', postgres: 'sql', sqlite: 'sql', files: 'files', bucket: 'files' };

function readGroupChecks(r: Reader, group: string, node: Node | undefined, members: string[], config: LifeboatConfig): GroupCheck[] {
  if (node === undefined) return [];
  if (!isSeq(node)) r.fail(node, `"checks" of group "${group}" must be a list of checks, each { name, every, in }`);
  const checks: GroupCheck[] = [];
  for (const item of node.items as Node[]) {
    const { values: v, nodes } = r.object(item, groupCheckOptions(), `in a check of group "${group}"`, { node: item, label: `a check of group "${group}"`, name: group });
    if (checks.some((c) => c.name === v.name)) r.fail(nodes.get('name'), `group "${group}" has two checks named "${v.name}"`);
    const side = (which: 'every' | 'in'): CheckQuery => {
      const q = v[which];
      const at = (k: string) => nodes.get(`${which}.${k}`) ?? nodes.get(which) ?? item;
      if (!members.includes(q.member)) r.fail(at('member'), `check "${v.name}" of group "${group}" reads "${q.member}", which is not a member of the group`, `members: ${members.join(', ')}`);
      const kind = (config.sources.get(q.member) as SourceConfig).kind;
      const want = QUERY_OF_KIND[kind];
      const given = (['redis', 'sql', 'files'] as const).filter((k) => q[k] !== undefined);
      const hint = `a ${kind} member is read with ${want === undefined ? 'nothing yet' : `"${want}"`} (docs/groups.md)`;
      if (want === undefined) r.fail(at('member'), `check "${v.name}": member "${q.member}" is a ${kind} source, which a check cannot read`, 'checks read redis, postgres, sqlite, files and bucket members');
      if (given.length !== 1 || given[0] !== want) r.fail(nodes.get(which) ?? item, `check "${v.name}": "${which}" needs exactly one query, "${want}", for ${kind} member "${q.member}"${given.length ? ` (it has ${given.map((g) => `"${g}"`).join(', ')})` : ''}`, hint);
      if (q.database !== undefined && kind !== 'postgres') r.fail(at('database'), `check "${v.name}": "database" is for postgres members, and "${q.member}" is a ${kind} source`);
      if (q.match !== undefined) {
        try {
          new RegExp(q.match);
        } catch (err) {
          r.fail(at('match'), `check "${v.name}": "match" is not a regular expression: ${(err as Error).message}`);
        }
        // An alternative that matches the empty string: exec() then reports every group.
        const groups = (new RegExp(`${q.match}|`).exec('') as RegExpExecArray).length - 1;
        if (groups > 1) r.fail(at('match'), `check "${v.name}": "match" has ${groups} groups; the value is the first, so give at most one`, 'use (?:...) for groups that only group');
      }
      const match = q.match === undefined ? {} : { match: q.match };
      if (want === 'redis') {
        const cmd = (q.redis as string[])[0]!.toUpperCase();
        if (!(CHECK_REDIS_COMMANDS as readonly string[]).includes(cmd)) r.fail(at('redis'), `check "${v.name}": Redis command ${cmd} is not one a check reads with`, `use one of ${CHECK_REDIS_COMMANDS.join(', ')}`);
        return { member: q.member, kind: 'redis', redis: [cmd, ...(q.redis as string[]).slice(1)], ...match };
      }
      if (want === 'sql') return { member: q.member, kind: 'sql', sql: q.sql as string, ...(q.database !== undefined ? { database: q.database } : {}), ...match };
      const dir = (q.files as string).replace(/\/+$/, '') || '.';
      if (path.isAbsolute(dir) || dir.split('/').includes('..')) r.fail(at('files'), `check "${v.name}": "files" must be a directory relative to the restored data, without "..", not "${q.files}"`, 'e.g. files: blobs (or . for every file)');
      return { member: q.member, kind: 'files', files: dir, ...match };
    };
    checks.push({ name: v.name, every: side('every'), in: side('in') });
  }
  return checks;
}

function readNotification(r: Reader, name: string, node: Node, key: Node): NotificationConfig {
  const { values: v } = r.object(node, notificationOptions(), `in notification "${name}"`, { node: node ?? key, label: `notification "${name}"`, name });
  return {
    name,
    url: v.url,
    format: v.format ?? 'json',
    on: (v.on as NotifyEvent[] | undefined) ?? [...NOTIFY_EVENTS],
    retries: v.retries ?? 3,
    timeoutSeconds: v.timeout ? seconds(v.timeout) : 10,
    headers: v.headers ?? {},
    repeatSeconds: v.repeat === undefined ? DEFAULT_REPEAT_SECONDS : v.repeat === 'never' ? null : seconds(v.repeat),
  };
}

function readServer(r: Reader, node: Node, server: ServerConfig): void {
  const { values: v, nodes } = r.object(node, serverOptions(), 'in "server"', { node, label: '"server"', name: 'server' });
  if (v.listen !== undefined) {
    const text = typeof v.listen === 'number' ? `127.0.0.1:${v.listen}` : v.listen;
    const m = /^(.*):(\d{1,5})$/.exec(text);
    const port = Number(m?.[2]);
    if (!m || !(m[1] as string) || port > 65535) r.fail(nodes.get('listen'), `"listen" must be HOST:PORT, not "${text}"`, 'e.g. listen: 127.0.0.1:8470 (port 0: any free port)');
    server.host = (m as RegExpExecArray)[1]!.replace(/^\[(.*)\]$/, '$1');
    server.port = port;
  }
  if (v.state_dir !== undefined) server.stateDir = v.state_dir;
  if (v.check_interval) server.checkIntervalSeconds = seconds(v.check_interval);
  if (v.keep_jobs) server.keepJobsSeconds = seconds(v.keep_jobs);
  if (v.restore_roots) {
    server.restoreRoots = v.restore_roots.map((root) => {
      if (!path.isAbsolute(root) || path.normalize(root) === '/') r.fail(nodes.get('restore_roots'), `"restore_roots" entries must be absolute directories other than /, not "${root}"`, 'e.g. restore_roots: [/var/tmp/lifeboat-restores]');
      return path.normalize(root).replace(/(.)\/+$/, '$1');
    });
  }
  // A whole number is a row count; a duration an age (the row cap still holds).
  if (typeof v.keep_audit === 'number') server.keepAudit = { rows: v.keep_audit };
  else if (v.keep_audit) server.keepAudit = { seconds: seconds(v.keep_audit), rows: DEFAULT_KEEP_AUDIT.rows };
  if (v.metrics_token !== undefined) {
    if (v.metrics_token.length < 16) r.fail(nodes.get('metrics_token'), '"metrics_token" must be at least 16 characters', 'e.g. the output of `openssl rand -hex 24`');
    server.metricsToken = v.metrics_token;
  }
  if (v.metrics_token_file !== undefined) server.metricsTokenFile = v.metrics_token_file;
  if (v.tls) server.tls = { cert: v.tls.cert, key: v.tls.key };
}
