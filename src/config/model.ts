/**
 * The option model: every key of lifeboat.yaml declared once, with its type, its
 * documentation and where else the same option may be given (a flag, an environment
 * variable, an API body). config.ts reads the file through it, cli/commands/options.ts
 * turns a declaration into a commander flag with the same parser, the API takes its
 * JSON Schema from it (jsonSchemaOf), and docs/configuration.md's key reference is
 * rendered from it (docs.ts; a unit test fails when the two disagree).
 *
 * Per-kind source keys live with their kind (src/sources/<kind>/options.ts) and are
 * found through the Source registry (each kind's `options`).
 */
import * as z from 'zod';
import { duration, lazily, moment, oneOf, option, text, texts, whole, yesNo } from './schema.js';

export const JOB_KINDS = ['backup', 'drill', 'check', 'forget', 'prune', 'rotate'] as const;
export const NOTIFY_EVENTS = ['failure', 'rpo_breach', 'archive_down', 'diverged', 'archive_gap', 'recovery'] as const;

/** A retention count: up to a million periods is more than any real policy names. */
const count = (description: string, flag: string) => option(whole(0, 1_000_000).optional(), { description, flag });

export const repositoryOptions = lazily(() => z.object({
  stores: option(z.array(text(), { error: 'must be a list of one or more locations' }).min(1, { error: 'must be a list of one or more locations' }), {
    description: 'one or more locations, the first read first: a directory, `s3:https://host[:port]/bucket/prefix`, `azure:container/prefix`, `rclone:remote:path` (docs/storage.md)',
    example: '[/srv/lifeboat, s3:https://host/bucket/prefix]',
  }),
  write_quorum: option(whole(1, 1000).optional(), { description: 'how many destinations must hold a write before it counts (1 to the number of stores)', shown: 'all stores' }),
  limit_upload: option(whole(0, 1e9).optional(), { description: 'KiB/s per destination; 0: unlimited', shown: 'unlimited' }),
  limit_download: option(whole(0, 1e9).optional(), { description: 'KiB/s per destination; 0: unlimited', shown: 'unlimited' }),
  append_only: option(yesNo().optional(), { description: 'this client may only add: forget, prune and compaction are refused', shown: 'false' }),
  password_file: option(text().optional(), { description: 'the repository password, used when neither `--password-file` nor `LIFEBOAT_PASSWORD(_FILE)` is given', flag: '--password-file', env: 'LIFEBOAT_PASSWORD_FILE' }),
  key_command: option(z.union([text(), z.array(text())], { error: 'must be a command: words in a string, or a list' }).optional(), {
    description: 'open with command key slots instead of a password: the unwrap program, as words or a list (docs/keys.md)',
    flag: '--key-command',
    env: 'LIFEBOAT_KEY_COMMAND',
  }),
}));

export const retentionOptions = lazily(() => z.object({
  keep_last: count('keep the n newest snapshots', '--keep-last'),
  keep_hourly: count('keep the newest snapshot of each of the n newest hours', '--keep-hourly'),
  keep_daily: count('... of each of the n newest days', '--keep-daily'),
  keep_weekly: count('... of each of the n newest ISO weeks', '--keep-weekly'),
  keep_monthly: count('... of each of the n newest months', '--keep-monthly'),
  keep_yearly: count('... of each of the n newest years', '--keep-yearly'),
  keep_within: option(duration().optional(), { description: 'keep snapshots newer than now minus this (e.g. 14d, 6mo, 1y6mo)', flag: '--keep-within' }),
  keep_logs_within: option(duration().optional(), {
    description: 'keep WAL/SQLite frames replayable only this far back (e.g. 7d); older bases keep what makes them consistent',
    flag: '--keep-logs-within',
  }),
}));

export const targetOptions = lazily(() => z.object({
  rpo: option(duration().optional(), { description: 'the most data a loss may cost: the newest recoverable point may be at most this old' }),
  rto: option(duration().optional(), { description: 'how long a restore may take; drills measure it' }),
}));

/** Keys every source takes, whatever its kind. */
export const sourceCommonOptions = lazily(() => z.object({
  kind: option(text(), { description: 'what kind of data: files, postgres, sqlite, redis or oplog; decides the other keys', example: 'files' }),
  repository: option(text().optional(), { description: 'the repository it is backed up to', shown: 'the only one defined' }),
  tags: option(texts().optional(), { description: 'tags given to its snapshots', shown: 'none', flag: '--tag' }),
  retention: option(retentionOptions().optional(), { description: 'keep rules, with the meanings of `lifeboat forget`' }),
  targets: option(targetOptions().optional(), { description: 'RPO and RTO targets that metrics, alerts, the dashboard and the runbook compare against' }),
}));

export const scheduleOptions = lazily(() => z.object({
  run: option(oneOf(JOB_KINDS), { description: '`backup`, `drill` or `forget` (per source); `check`, `prune` or `rotate` (per repository)', example: JOB_KINDS.join(' | ') }),
  sources: option(texts().optional(), { description: 'which sources', shown: 'all (forget: all with a retention policy)' }),
  groups: option(texts().optional(), { description: '`backup` and `drill` only: consistency groups (under `groups:`) captured or drilled instead of sources; not with `sources`', shown: 'none' }),
  repository: option(text().optional(), { description: 'check, prune and rotate: which repository', shown: 'the only one' }),
  cron: option(text(), { description: 'five fields: minute hour day-of-month month day-of-week; a sixth (seconds) field is refused', example: '"0 2 * * *" (minute hour day month weekday)' }),
  timezone: option(text().optional(), { description: 'an IANA zone such as `UTC` or `Europe/Berlin`', shown: "the machine's" }),
  jitter: option(duration().optional(), { description: 'a random delay up to this long after each fire time, so many hosts do not start at once', shown: '0' }),
  catch_up: option(yesNo().optional(), { description: 'when fire times passed while the daemon was down, run once at start', shown: 'true' }),
  read_data_subset: option(z.string({ error: 'must be a percentage such as 5%' }).regex(/^\d+(\.\d+)?%$/, { error: 'must be a percentage such as 5%' }).optional(), {
    description: '`check` only: a percentage of packs to read and authenticate',
    flag: '--read-data-subset',
    api: true,
  }),
}));

export const notificationOptions = lazily(() => z.object({
  url: option(text().regex(/^https?:\/\/[^\s]+$/, { error: 'must be an http(s) URL' }), { description: 'the webhook', example: 'https://hooks.example.com/...' }),
  format: option(oneOf(['json', 'slack'] as const).optional(), { description: '`json`, or `slack` (`{"text": ...}`, also accepted by Mattermost and Teams workflows)', shown: 'json' }),
  on: option(
    texts()
      .superRefine((events, ctx) => {
        const bad = events.find((e) => !(NOTIFY_EVENTS as readonly string[]).includes(e));
        if (bad !== undefined) ctx.addIssue({ code: 'custom', message: `"${bad}" is not an event`, params: { hint: `events: ${NOTIFY_EVENTS.join(', ')}` } });
      })
      .optional(),
    { description: `which events: ${NOTIFY_EVENTS.join(', ')}`, shown: 'all six' },
  ),
  retries: option(whole(0, 20).optional(), { description: 'deliveries retried with waits of 1 s, 2 s, 4 s, ...', shown: '3' }),
  timeout: option(duration().optional(), { description: 'how long one delivery may take', shown: '10s' }),
  headers: option(z.record(z.string(), text(), { error: 'must be a mapping of header names to strings' }).optional(), { description: 'extra HTTP headers, e.g. Authorization' }),
  repeat: option(z.union([z.literal('never'), duration()], { error: 'must be a duration or never' }).optional(), {
    description: 'while an incident stays open, remind this often; `never` to turn off',
    shown: '4h',
  }),
}));

export const serverOptions = lazily(() => z.object({
  listen: option(z.union([text(), z.int()], { error: 'must be HOST:PORT' }).optional(), { description: 'HOST:PORT; port 0 picks a free port', shown: '127.0.0.1:8470', flag: '--listen' }),
  state_dir: option(text().optional(), { description: 'catalog (jobs, audit log, tokens); relative to lifeboat.yaml', shown: 'lifeboat-state' }),
  tls: option(z.object({ cert: option(text(), { description: 'PEM certificate file', example: '/etc/lifeboat/tls.crt' }), key: option(text(), { description: 'PEM key file', example: '/etc/lifeboat/tls.key' }) }).optional(), {
    description: 'HTTPS when present: `{ cert, key }`, PEM files',
  }),
  check_interval: option(duration().optional(), { description: 'how often RPO and archiving are checked against the targets and incidents', shown: '30s' }),
  keep_jobs: option(duration().optional(), { description: 'finished jobs and their logs older than this leave the catalog', shown: '90d' }),
  restore_roots: option(texts().optional(), { description: 'absolute directories (not /) API restores may write below; none: API restores are admin-only', shown: 'none' }),
  keep_audit: option(z.union([whole(1, 100_000_000), duration()], { error: 'must be a duration or a number of rows' }).optional(), {
    description: 'audit rows older than this duration are dropped, or a whole number: rows kept; never more than 100 000 rows',
    shown: '90d',
  }),
  metrics_token: option(text().optional(), { description: 'the Bearer token /metrics asks for beyond loopback (at least 16 characters); prefer metrics_token_file' }),
  metrics_token_file: option(text().optional(), { description: 'a file others cannot read holding metrics_token' }),
}));

/** A hook command: argv as a list, run without a shell (a string would need one to split it safely). */
const argv = () => z.array(text(), { error: 'must be a command as a list of words, e.g. [/usr/local/bin/app-ctl, freeze]' }).min(1, { error: 'must be a command as a list of words, e.g. [/usr/local/bin/app-ctl, freeze]' });

/** An HTTP freeze or thaw: `{ http: { url, method, headers_file, timeout } }` (docs/groups.md). */
export const httpHookOptions = lazily(() => z.object({
  url: text().regex(/^https?:\/\/[^\s]+$/, { error: 'must be an http(s) URL' }),
  method: oneOf(['POST', 'PUT', 'GET', 'DELETE'] as const).optional(),
  headers_file: text().optional(),
  timeout: duration().optional(),
}).strict());

/** A freeze or thaw: argv, an HTTP request, or the members' built-in holds. */
function hookForm() {
  return z.union([argv(), z.object({ http: httpHookOptions() }).strict(), z.literal('builtin')], {
    error: 'must be a command as a list of words, { http: { url: ... } } or builtin',
  });
}

/**
 * A consistency group (docs/groups.md): sources captured at one moment. Writes are held
 * from the start of `freeze` to the end of `thaw`; 200 ms by default, the seeds' "release
 * the lock within milliseconds" with room for three position queries on a busy host.
 */
export const groupOptions = lazily(() => z.object({
  members: option(texts(), { description: 'the sources captured together (names under `sources:`): postgres, sqlite and redis record a log position; files and bucket are copied at the point', example: '[orders, cache, catalog]' }),
  freeze: option(hookForm().optional(), {
    description: 'what holds writes: a command as a list of words (never run by a shell), `{ http: { url, method, headers_file, timeout } }`, or `builtin` (each member holds its own writes: Redis `CLIENT PAUSE WRITE`, the SQLite write lock, PostgreSQL nothing but its restore point); killed when it overruns max_hold',
    shown: 'none: positions are read back to back, not at one moment',
  }),
  thaw: option(hookForm().optional(), { description: 'what releases writes, in the same forms (`builtin` with `freeze: builtin`); always run once freeze started, whatever happened', shown: 'none (required with freeze)' }),
  max_hold: option(duration().optional(), { description: 'the longest writes may be held (freeze start to thaw end); a capture that takes longer fails after thaw ran; at most 1h', shown: '200ms' }),
  snapshots: option(z.record(z.string(), z.unknown(), { error: 'must be a mapping of member names to { create, release, path }' }).optional(), {
    description: 'files members only: a filesystem snapshot per member, `MEMBER: { create: [argv], release: [argv], path: DIR }`, made while frozen and backed up after thaw (docs/groups.md); `{point}` in a word or the path is the point id; without `path`, the last line `create` prints is the directory',
    shown: 'none: files members are copied while frozen',
  }),
  checks: option(z.array(z.record(z.string(), z.unknown()), { error: 'must be a list of checks, each { name, every, in }' }).optional(), {
    description: '`group drill`: cross-member checks run on the restored members, each `{ name, every: QUERY, in: QUERY }` (below)',
    shown: 'none',
  }),
}));

/** A files member's snapshot hook: `create` makes it while frozen, `release` drops it after the backup. */
export const snapshotHookOptions = lazily(() => z.object({
  create: option(argv(), { description: 'makes the filesystem snapshot (argv, no shell); `{point}` is the point id', example: '[btrfs, subvolume, snapshot, -r, /srv/data, "/srv/.snap/{point}"]' }),
  release: option(argv(), { description: 'drops it after the backup, always run once create succeeded', example: '[btrfs, subvolume, delete, "/srv/.snap/{point}"]' }),
  path: option(text().optional(), { description: 'the directory to back up; without it, the last line create printed', shown: 'the last line create printed' }),
}));

/**
 * Redis commands a check may read with: they only read, and reply with a list or a
 * string. Whatever runs goes to a scratch server loaded from the restored dump, but a
 * check that wrote would not be a check.
 */
export const CHECK_REDIS_COMMANDS = ['SMEMBERS', 'SINTER', 'SUNION', 'SDIFF', 'HKEYS', 'HVALS', 'LRANGE', 'ZRANGE', 'KEYS', 'MGET', 'GET', 'HGET', 'HMGET'] as const;

/** One side of a cross-member check: a member and the query that gives its set of strings. */
export const checkQueryOptions = lazily(() => z.object({
  member: option(text(), { description: 'a member of the group', example: 'hot' }),
  redis: option(z.array(text(), { error: 'must be a command as a list of words, e.g. [SMEMBERS, active]' }).min(1, { error: 'must be a command as a list of words, e.g. [SMEMBERS, active]' }).optional(), {
    description: `redis members: a command whose reply gives the values (${CHECK_REDIS_COMMANDS.join(', ')})`,
  }),
  sql: option(text().optional(), { description: 'postgres and sqlite members: a query; the first column of each row is a value (NULLs are left out), run read-only' }),
  database: option(text().optional(), { description: 'postgres members: the database the query runs in', shown: "the dsn's, else postgres" }),
  files: option(text().optional(), { description: 'files and bucket members: a directory of the restored data, relative; the names of the files below it (relative to it, `/` between parts) are the values; `.` for all' }),
  match: option(text().optional(), { description: 'a regular expression: values it does not match are left out, and its first group (else the whole match) is the value, e.g. `^mem:(\\d+)$`' }),
}));

/** A cross-member check of a group: every value `every` gives must be among those `in` gives. */
export const groupCheckOptions = lazily(() => z.object({
  name: option(text(), { description: 'what the check is called in reports', example: 'cached ids are rows' }),
  every: option(checkQueryOptions(), { description: 'the values that must all be found' }),
  in: option(checkQueryOptions(), { description: 'the values they must be found among' }),
}));

/** The top-level sections, each a map of names to objects (server: one object). */
export const SECTIONS = ['repositories', 'sources', 'schedules', 'groups', 'notifications', 'server'] as const;

/**
 * Options given only on the command line and through the API (not in lifeboat.yaml):
 * an API token's lifetime (`token create --expires`, POST /api/v1/tokens `expires`).
 * A minute at least: a shorter one expires before it can be used.
 */
export const tokenExpires = lazily(() => option(z.union([z.literal('never'), duration({ min: '1min' })], { error: 'must be a duration or never' }).optional(), {
  description: 'how long the token is valid, e.g. 30d, 12h or 1w; `never`',
  flag: '--expires',
  api: true,
  file: false,
  shown: 'never',
}));

/**
 * What a restore is asked for, on the command line (the restore commands' flags) and in
 * the API's POST /api/v1/restores and /recoveries bodies; not in lifeboat.yaml. Which of
 * them a kind takes is its restore table (engine/restore-options.ts).
 */
export const restoreRequestOptions = lazily(() => z.object({
  source: option(text(), { description: 'the source to restore: its name in lifeboat.yaml', api: true, file: false }),
  target: option(text(), { description: 'where to restore: a new directory (files, PostgreSQL, Redis) or a new file (SQLite, an operation log), never overwritten; the restore commands of the kinds call it --output', flag: '--target', api: true, file: false }),
  time: option(moment().optional(), { description: 'restore as of this moment: RFC 3339 with a zone, not in the future (e.g. 2026-11-21T14:30:05Z)', flag: '--time', api: true, file: false, shown: 'the newest' }),
  snapshot: option(text().optional(), { description: 'a snapshot id or a unique prefix of one', flag: '--snapshot', api: true, file: false, shown: 'the newest fitting' }),
  txn: option(z.int().min(1).optional(), { description: 'SQLite, Redis: restore up to and including this transaction (numbers: `sqlite history`, `redis history`)', flag: '--txn', api: true, file: false }),
  before_txn: option(z.int().min(1).optional(), { description: 'SQLite, Redis: restore up to just before this transaction: undo it and everything after', flag: '--before-txn', api: true, file: false }),
  generation: option(z.string().regex(/^[0-9a-f]{1,64}$/, { error: 'must be a generation id (hex digits)' }).optional(), { description: 'SQLite, Redis: the generation txn/before_txn count in', flag: '--generation', api: true, file: false, shown: 'the newest' }),
}));
