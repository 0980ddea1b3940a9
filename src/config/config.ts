/**
 * lifeboat.yaml: one file configures the CLI's named repositories and the daemon
 * (sources, schedules, notifications, server). A bad file fails with the key and line
 * at fault and a hint; docs/configuration.md documents every key.
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
 *                 targets: { rpo: 5m, rto: 30m }, retention: { keep_daily: 14 } }
 *   schedules:
 *     nightly:  { run: backup, sources: [orders], cron: "0 2 * * *", timezone: Europe/Berlin }
 *   notifications:
 *     ops:      { url: https://hooks.example/x, format: slack, on: [failure, rpo_breach, archive_down, recovery], repeat: 4h }
 *   server:     { listen: 127.0.0.1:8470, state_dir: /var/lib/lifeboat }
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { cronOf } from '../daemon/scheduler.js';
import { LineCounter, parseDocument, isMap, isScalar, isSeq, type Node, type YAMLMap } from 'yaml';
import { sourceKind, sourceKinds } from '../sources/registry.js';
import { LifeboatError, errno } from '../errors.js';

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

/** The name of a registered kind of source (src/sources/registry.ts): files, postgres, sqlite. */
export type SourceKind = string;

export interface RetentionConfig {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
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
  /** Continuous log archiving: PostgreSQL WAL streaming or SQLite replication, kept alive by the daemon. */
  continuous: boolean;
  /** sqlite replication: how often frames are shipped. */
  interval?: string;
  snapshotInterval?: string;
  /** sqlite replication: how often the stored history is compared with the live database. */
  verifyInterval?: string;
  tags: string[];
  retention?: RetentionConfig;
  targets: { rpoSeconds?: number; rtoSeconds?: number };
}

export const JOB_KINDS = ['backup', 'drill', 'check', 'forget', 'prune', 'rotate'] as const;
export type ScheduledJobKind = (typeof JOB_KINDS)[number];

export interface ScheduleConfig {
  name: string;
  run: ScheduledJobKind;
  /** Sources the job runs for (backup, drill, forget); empty for repository jobs. */
  sources: string[];
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

export const NOTIFY_EVENTS = ['failure', 'rpo_breach', 'archive_down', 'diverged', 'recovery'] as const;
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
  notifications: Map<string, NotificationConfig>;
  server: ServerConfig;
}

const TOP_KEYS = ['repositories', 'sources', 'schedules', 'notifications', 'server'];
const REPO_KEYS = ['stores', 'write_quorum', 'limit_upload', 'limit_download', 'append_only', 'password_file', 'key_command'];
const COMMON_SOURCE_KEYS = ['kind', 'repository', 'tags', 'retention', 'targets'];
const RETENTION_KEYS = ['keep_last', 'keep_hourly', 'keep_daily', 'keep_weekly', 'keep_monthly', 'keep_yearly', 'keep_within', 'keep_logs_within'];
const SCHEDULE_KEYS = ['run', 'sources', 'repository', 'cron', 'timezone', 'jitter', 'catch_up', 'read_data_subset'];
const NOTIFY_KEYS = ['url', 'format', 'on', 'retries', 'timeout', 'headers', 'repeat'];
const SERVER_KEYS = ['listen', 'state_dir', 'tls', 'check_interval', 'keep_jobs', 'restore_roots', 'keep_audit', 'metrics_token', 'metrics_token_file'];
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const DOCS = 'see docs/configuration.md';

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

/** Seconds in "500ms", "90s", "5m", "1h", "7d"; a bare number is seconds. */
export function durationSeconds(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[(m[2] ?? 's') as 's'];
}

/** Reads YAML nodes, failing with the file and line of the node at fault. */
class Reader {
  constructor(
    private readonly file: string,
    private readonly lines: LineCounter,
  ) {}

  at(node: Node | null | undefined): string {
    const offset = node?.range?.[0];
    return offset === undefined ? this.file : `${this.file}:${this.lines.linePos(offset).line}`;
  }

  fail(node: Node | null | undefined, message: string, hint = DOCS): never {
    throw new LifeboatError('CONFIG_INVALID', `${this.at(node)}: ${message}`, { hint });
  }

  /** The map's entries, refusing keys not in `known`. */
  entries(map: YAMLMap, known: readonly string[], where: string): Array<[string, Node | null, Node]> {
    return map.items.map((pair) => {
      const key = String((pair.key as { value?: unknown }).value);
      if (!known.includes(key)) this.fail(pair.key as Node, `unknown key "${key}" ${where}`, `known keys: ${known.join(', ')}`);
      return [key, pair.value as Node | null, pair.key as Node];
    });
  }

  map(node: Node | null | undefined, what: string, hint = DOCS): YAMLMap {
    if (!isMap(node)) this.fail(node, `${what} must be a mapping`, hint);
    return node as YAMLMap;
  }

  string(node: Node | null | undefined, what: string, hint = DOCS): string {
    if (!isScalar(node) || typeof node.value !== 'string' || node.value === '') this.fail(node, `${what} must be a non-empty string`, hint);
    return (node as { value: string }).value;
  }

  strings(node: Node | null | undefined, what: string, hint = DOCS): string[] {
    if (isScalar(node) && typeof node.value === 'string') return [this.string(node, what, hint)];
    if (!isSeq(node)) this.fail(node, `${what} must be a list of strings`, hint);
    return (node as { items: Node[] }).items.map((item) => this.string(item, `each of ${what}`, hint));
  }

  integer(node: Node | null | undefined, what: string, min: number, max: number): number {
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(node, `${what} must be a whole number from ${min} to ${max}`);
    return v as number;
  }

  boolean(node: Node | null | undefined, what: string): boolean {
    if (!(isScalar(node) && typeof node.value === 'boolean')) this.fail(node, `${what} must be true or false`);
    return (node as { value: boolean }).value;
  }

  seconds(node: Node | null | undefined, what: string): number {
    const raw = isScalar(node) ? node.value : undefined;
    const s = typeof raw === 'number' ? raw : typeof raw === 'string' ? durationSeconds(raw) : undefined;
    if (s === undefined || !(s > 0)) this.fail(node, `${what} must be a duration such as 30s, 5m, 1h or 7d`);
    return s as number;
  }

  duration(node: Node | null | undefined, what: string): string {
    this.seconds(node, what);
    return String((node as { value: unknown }).value);
  }

  oneOf<T extends string>(node: Node | null | undefined, what: string, allowed: readonly T[]): T {
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v !== 'string' || !allowed.includes(v as T)) this.fail(node, `${what} must be one of ${allowed.join(', ')}`);
    return v as T;
  }

  name(key: Node, what: string): string {
    const name = String((key as { value?: unknown }).value);
    if (!NAME.test(name)) this.fail(key, `"${name}" is not a valid ${what} name`, 'use letters, digits, ".", "_" and "-", starting with a letter or digit');
    return name;
  }
}

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
    notifications: new Map(),
    server: { host: '127.0.0.1', port: 8470, stateDir: 'lifeboat-state', checkIntervalSeconds: 30, keepJobsSeconds: 90 * 86400, restoreRoots: [], keepAudit: { ...DEFAULT_KEEP_AUDIT } },
  };
  const root = doc.contents;
  if (root === null || root === undefined) return config;
  const sections = new Map<string, [Node | null, Node]>();
  for (const [key, value, keyNode] of r.entries(r.map(root, 'the file', 'start with `repositories:`'), TOP_KEYS, 'at the top level')) {
    sections.set(key, [value, keyNode]);
  }
  const section = (name: string): Array<[string, YAMLMap, Node]> => {
    const s = sections.get(name);
    if (!s) return [];
    const map = r.map(s[0] ?? s[1], `"${name}"`);
    return map.items.map((pair) => {
      const key = pair.key as Node;
      return [r.name(key, name.replace(/s$/, '')), r.map((pair.value as Node | null) ?? key, `"${String((key as { value?: unknown }).value)}" in ${name}`), key];
    });
  };

  for (const [name, map] of section('repositories')) config.repositories.set(name, readRepository(r, name, map));
  for (const [name, map, key] of section('sources')) config.sources.set(name, readSource(r, name, map, key, config));
  for (const [name, map] of section('schedules')) config.schedules.set(name, readSchedule(r, name, map, config));
  for (const [name, map] of section('notifications')) config.notifications.set(name, readNotification(r, name, map));
  const server = sections.get('server');
  if (server) readServer(r, r.map(server[0] ?? server[1], '"server"'), config.server);
  return config;
}

function readRepository(r: Reader, name: string, map: YAMLMap): RepositoryConfig {
  const e = new Map(r.entries(map, REPO_KEYS, `in repository "${name}"`).map(([k, v]) => [k, v]));
  const storesNode = e.get('stores');
  if (!isSeq(storesNode) || storesNode.items.length === 0) {
    r.fail(storesNode ?? map, `repository "${name}" needs "stores": a list of one or more locations`, 'e.g. stores: [/srv/lifeboat, s3:https://host/bucket/prefix]');
  }
  const stores = r.strings(storesNode, '"stores"', 'quote a location if it contains ": "');
  const int = (k: string, min: number, max: number) => (e.has(k) ? r.integer(e.get(k), `"${k}"`, min, max) : undefined);
  const up = int('limit_upload', 0, 1e9);
  const down = int('limit_download', 0, 1e9);
  return {
    name,
    stores,
    writeQuorum: int('write_quorum', 1, stores.length) ?? stores.length,
    ...(up ? { limitUploadKiB: up } : {}),
    ...(down ? { limitDownloadKiB: down } : {}),
    appendOnly: e.has('append_only') ? r.boolean(e.get('append_only'), '"append_only"') : false,
    ...(e.has('password_file') ? { passwordFile: r.string(e.get('password_file'), '"password_file"') } : {}),
    ...(e.has('key_command') ? { keyCommand: isSeq(e.get('key_command')) ? r.strings(e.get('key_command'), '"key_command"') : r.string(e.get('key_command'), '"key_command"') } : {}),
  };
}

function readSource(r: Reader, name: string, map: YAMLMap, key: Node, config: LifeboatConfig): SourceConfig {
  const kindNode = map.get('kind', true) as Node | undefined;
  // Each kind of source declares and reads its own keys (src/sources/<kind>/kind.ts).
  const kinds = sourceKinds().map((k) => k.name);
  if (kindNode === undefined) r.fail(key, `source "${name}" needs "kind"`, `kind: ${kinds.join(', ')}`);
  const kind = r.oneOf(kindNode, `"kind" of source "${name}"`, kinds);
  const kindOf = sourceKind(kind);
  const e = new Map(r.entries(map, [...COMMON_SOURCE_KEYS, ...kindOf.configKeys], `in ${kind} source "${name}"`).map(([k, v]) => [k, v]));
  const repoNode = e.get('repository');
  let repository: string;
  if (repoNode === undefined) {
    if (config.repositories.size !== 1) r.fail(key, `source "${name}" needs "repository"`, 'name one of the repositories defined under `repositories:`');
    repository = [...config.repositories.keys()][0] as string;
  } else {
    repository = r.string(repoNode, '"repository"');
    if (!config.repositories.has(repository)) {
      r.fail(repoNode, `source "${name}" names repository "${repository}", which is not defined`, `defined: ${[...config.repositories.keys()].join(', ') || 'none'}`);
    }
  }
  const source: SourceConfig = {
    name,
    kind,
    repository,
    paths: [],
    exclude: e.has('exclude') ? r.strings(e.get('exclude'), '"exclude"') : [],
    continuous: false,
    tags: e.has('tags') ? r.strings(e.get('tags'), '"tags"') : [],
    targets: {},
  };
  const need = (k: string, example: string): Node => {
    if (!e.has(k)) r.fail(key, `${kind} source "${name}" needs "${k}"`, `e.g. ${k}: ${example}`);
    return e.get(k) as Node;
  };
  kindOf.readConfig(source, {
    has: (k) => e.has(k),
    string: (k, example) => r.string(example === undefined ? e.get(k) : need(k, example), `"${k}"`),
    strings: (k, o = {}) => r.strings(o.example === undefined ? e.get(k) : need(k, o.example), `"${k}"`, o.hint),
    boolean: (k) => r.boolean(e.get(k), `"${k}"`),
    duration: (k) => r.duration(e.get(k), `"${k}"`),
  });
  if (e.has('targets')) {
    const t = new Map(r.entries(r.map(e.get('targets'), '"targets"'), ['rpo', 'rto'], `in the targets of "${name}"`).map(([k, v]) => [k, v]));
    if (t.has('rpo')) source.targets.rpoSeconds = r.seconds(t.get('rpo'), '"rpo"');
    if (t.has('rto')) source.targets.rtoSeconds = r.seconds(t.get('rto'), '"rto"');
  }
  if (e.has('retention')) {
    const ret: RetentionConfig = {};
    for (const [k, v] of r.entries(r.map(e.get('retention'), '"retention"'), RETENTION_KEYS, `in the retention of "${name}"`)) {
      const field = k.replace(/_(\w)/g, (_, c: string) => c.toUpperCase()) as keyof RetentionConfig;
      if (k === 'keep_within' || k === 'keep_logs_within') (ret as Record<string, string>)[field] = r.duration(v, `"${k}"`);
      else (ret as Record<string, number>)[field] = r.integer(v, `"${k}"`, 0, 1_000_000);
    }
    source.retention = ret;
  }
  return source;
}

function readSchedule(r: Reader, name: string, map: YAMLMap, config: LifeboatConfig): ScheduleConfig {
  const e = new Map(r.entries(map, SCHEDULE_KEYS, `in schedule "${name}"`).map(([k, v]) => [k, v]));
  if (!e.has('run')) r.fail(map, `schedule "${name}" needs "run"`, `run: ${JOB_KINDS.join(' | ')}`);
  if (!e.has('cron')) r.fail(map, `schedule "${name}" needs "cron"`, 'e.g. cron: "0 2 * * *" (minute hour day month weekday)');
  const run = r.oneOf(e.get('run'), '"run"', JOB_KINDS);
  const cron = r.string(e.get('cron'), '"cron"');
  const timezone = e.has('timezone') ? r.string(e.get('timezone'), '"timezone"') : undefined;
  // croner would take a sixth field as seconds ("0 0 2 * * *" is 02:00:00, not a
  // five-field line with an extra word); the docs describe five fields, so only those.
  const fields = cron.trim().split(/\s+/).length;
  if (fields !== 5) r.fail(e.get('cron'), `schedule "${name}": cron "${cron}" has ${fields} fields, not 5`, 'cron: "minute hour day month weekday", e.g. "30 2 * * *" (no seconds field)');
  try {
    cronOf({ cron, ...(timezone ? { timezone } : {}) }).nextRun();
  } catch (err) {
    r.fail(e.get(timezone !== undefined && /time ?zone/i.test(String(err)) ? 'timezone' : 'cron'), `schedule "${name}": ${(err as Error).message}`, 'cron: "minute hour day month weekday", e.g. "*/15 * * * *"; timezone: an IANA name such as Europe/Berlin');
  }
  if (timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: timezone });
    } catch {
      r.fail(e.get('timezone'), `"${timezone}" is not a time zone`, 'use an IANA name such as UTC or Europe/Berlin');
    }
  }
  const sources = e.has('sources') ? r.strings(e.get('sources'), '"sources"') : [];
  for (const s of sources) {
    if (!config.sources.has(s)) r.fail(e.get('sources'), `schedule "${name}" names source "${s}", which is not defined`, `defined: ${[...config.sources.keys()].join(', ') || 'none'}`);
  }
  const repository = e.has('repository') ? r.string(e.get('repository'), '"repository"') : undefined;
  if (repository !== undefined && !config.repositories.has(repository)) r.fail(e.get('repository'), `schedule "${name}" names repository "${repository}", which is not defined`);
  const repoJob = run === 'check' || run === 'prune' || run === 'rotate';
  if (repoJob && repository === undefined && config.repositories.size !== 1) r.fail(map, `schedule "${name}" (${run}) needs "repository"`);
  if (!repoJob && sources.length === 0 && config.sources.size === 0) r.fail(map, `schedule "${name}" (${run}) has no sources to run for`, 'define sources, or list them with `sources:`');
  if (run === 'forget') {
    const without = (sources.length > 0 ? sources : [...config.sources.keys()]).filter((n) => !config.sources.get(n)?.retention);
    if (sources.length > 0 && without.length > 0) r.fail(e.get('sources'), `schedule "${name}" (forget) names source "${without[0]}", which has no retention policy`, 'add retention: { keep_daily: 7, ... } to the source');
    if (sources.length === 0 && without.length === config.sources.size) r.fail(map, `schedule "${name}" (forget): no source has a retention policy`, 'add retention: to the sources it should thin out');
  }
  const subset = e.get('read_data_subset');
  if (subset !== undefined && !/^\d+(\.\d+)?%$/.test(String((subset as { value?: unknown }).value))) r.fail(subset, '"read_data_subset" must be a percentage such as 5%');
  return {
    name,
    run,
    // No list: every source (backup, drill), every source with a retention policy (forget).
    sources: repoJob ? [] : sources.length > 0 ? sources : [...config.sources.keys()].filter((n) => run !== 'forget' || config.sources.get(n)?.retention),
    ...(repoJob ? { repository: repository ?? ([...config.repositories.keys()][0] as string) } : {}),
    cron,
    ...(timezone ? { timezone } : {}),
    jitterSeconds: e.has('jitter') ? r.seconds(e.get('jitter'), '"jitter"') : 0,
    catchUp: e.has('catch_up') ? r.boolean(e.get('catch_up'), '"catch_up"') : true,
    ...(subset ? { readDataSubset: String((subset as { value: unknown }).value) } : {}),
  };
}

function readNotification(r: Reader, name: string, map: YAMLMap): NotificationConfig {
  const e = new Map(r.entries(map, NOTIFY_KEYS, `in notification "${name}"`).map(([k, v]) => [k, v]));
  if (!e.has('url')) r.fail(map, `notification "${name}" needs "url"`, 'url: https://hooks.example.com/...');
  const url = r.string(e.get('url'), '"url"');
  if (!/^https?:\/\/[^\s]+$/.test(url)) r.fail(e.get('url'), `"${url}" is not an http(s) URL`);
  const headers: Record<string, string> = {};
  if (e.has('headers')) {
    for (const [k, v] of r.map(e.get('headers'), '"headers"').items.map((p) => [String((p.key as { value?: unknown }).value), p.value as Node] as const)) headers[k] = r.string(v, `header "${k}"`);
  }
  return {
    name,
    url,
    format: e.has('format') ? r.oneOf(e.get('format'), '"format"', ['json', 'slack'] as const) : 'json',
    on: e.has('on') ? r.strings(e.get('on'), '"on"').map((v) => {
      if (!(NOTIFY_EVENTS as readonly string[]).includes(v)) r.fail(e.get('on'), `"${v}" is not an event`, `events: ${NOTIFY_EVENTS.join(', ')}`);
      return v as NotifyEvent;
    }) : [...NOTIFY_EVENTS],
    retries: e.has('retries') ? r.integer(e.get('retries'), '"retries"', 0, 20) : 3,
    timeoutSeconds: e.has('timeout') ? r.seconds(e.get('timeout'), '"timeout"') : 10,
    headers,
    repeatSeconds: !e.has('repeat') ? DEFAULT_REPEAT_SECONDS : isScalar(e.get('repeat')) && (e.get('repeat') as { value: unknown }).value === 'never' ? null : r.seconds(e.get('repeat'), '"repeat" (or never)'),
  };
}

function readServer(r: Reader, map: YAMLMap, server: ServerConfig): void {
  for (const [k, v] of r.entries(map, SERVER_KEYS, 'in "server"')) {
    if (k === 'listen') {
      const text = isScalar(v) && typeof v.value === 'number' ? `127.0.0.1:${v.value}` : r.string(v, '"listen"');
      const m = /^(.*):(\d{1,5})$/.exec(text);
      const port = Number(m?.[2]);
      if (!m || !(m[1] as string) || port > 65535) r.fail(v, `"listen" must be HOST:PORT, not "${text}"`, 'e.g. listen: 127.0.0.1:8470 (port 0: any free port)');
      server.host = (m as RegExpExecArray)[1]!.replace(/^\[(.*)\]$/, '$1');
      server.port = port;
    } else if (k === 'state_dir') server.stateDir = r.string(v, '"state_dir"');
    else if (k === 'check_interval') server.checkIntervalSeconds = r.seconds(v, '"check_interval"');
    else if (k === 'keep_jobs') server.keepJobsSeconds = r.seconds(v, '"keep_jobs"');
    else if (k === 'restore_roots') {
      server.restoreRoots = r.strings(v, '"restore_roots"').map((root) => {
        if (!path.isAbsolute(root) || path.normalize(root) === '/') r.fail(v, `"restore_roots" entries must be absolute directories other than /, not "${root}"`, 'e.g. restore_roots: [/var/tmp/lifeboat-restores]');
        return path.normalize(root).replace(/(.)\/+$/, '$1');
      });
    } else if (k === 'keep_audit') {
      // A whole number is a row count; anything else a duration (the row cap still holds).
      const raw = isScalar(v) ? v.value : undefined;
      if (typeof raw === 'number' && Number.isInteger(raw)) server.keepAudit = { rows: r.integer(v, '"keep_audit" (rows)', 1, 100_000_000) };
      else server.keepAudit = { seconds: r.seconds(v, '"keep_audit"'), rows: DEFAULT_KEEP_AUDIT.rows };
    } else if (k === 'metrics_token') {
      const t = r.string(v, '"metrics_token"');
      if (t.length < 16) r.fail(v, '"metrics_token" must be at least 16 characters', 'e.g. the output of `openssl rand -hex 24`');
      server.metricsToken = t;
    } else if (k === 'metrics_token_file') server.metricsTokenFile = r.string(v, '"metrics_token_file"');
    else if (k === 'tls') {
      const t = new Map(r.entries(r.map(v, '"tls"'), ['cert', 'key'], 'in "server.tls"').map(([kk, vv]) => [kk, vv]));
      if (!t.has('cert') || !t.has('key')) r.fail(v, '"tls" needs both "cert" and "key" (PEM files)');
      server.tls = { cert: r.string(t.get('cert'), '"cert"'), key: r.string(t.get('key'), '"key"') };
    }
  }
}
