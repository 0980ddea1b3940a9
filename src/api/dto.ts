/**
 * The API's data shapes, declared once each as zod 4 schemas: request parameters,
 * queries and bodies, and the responses the handlers, the OpenAPI document and the
 * dashboard share. `z.toJSONSchema` turns a request schema into what fastify validates
 * with (src/api/route.ts) and every schema into the OpenAPI document (src/api/openapi.ts);
 * `z.infer` gives the handlers and the dashboard (src/web/, type-only imports) their
 * types, so renaming a field here breaks whichever side still uses the old name.
 *
 * Request schemas are strict objects: an unknown key is refused with 400, not dropped.
 * Response schemas are documentation and types, not filters: fastify does not serialize
 * through them, so a response may carry more than they list.
 *
 * This module imports nothing but zod: the browser build reads it too. Request bodies
 * with fields that are options of the model (src/config/model.ts) take them from it
 * in src/api/bodies.ts instead.
 */
import * as z from 'zod';

// --- path parameters and queries ------------------------------------------------

export const NameParam = z.strictObject({ name: z.string() });
export const IdParam = z.strictObject({ id: z.string() });

/** `type=full` (Summit's alias): every Lifeboat backup is a complete snapshot, so it lists them all. */
export const BackupsQuery = z.strictObject({ source: z.string().optional(), limit: z.int().min(1).max(5000).optional(), type: z.enum(['full']).optional() });
export const SourceQuery = z.strictObject({ source: z.string().optional() });
export const JobsQuery = z.strictObject({
  source: z.string().optional(),
  kind: z.string().optional(),
  status: z.string().optional(),
  limit: z.int().min(1).max(1000).optional(),
});
/** GET /repositories/:name/snapshots/:id/tree and …/file: a path in the snapshot (absolute; checked by daemon/browse.ts). */
export const SnapshotParams = z.strictObject({ name: z.string(), id: z.string() });
export const SnapshotPathQuery = z.strictObject({ path: z.string().max(4096).optional() });
/** GET /sources/:name/restore-plan: a moment, a snapshot or (SQLite, Redis) a transaction, and optionally the target to check. */
export const RestorePlanQuery = z.strictObject({
  time: z.string().max(64).optional(),
  snapshot: z.string().max(64).optional(),
  txn: z.int().min(1).optional(),
  before_txn: z.int().min(1).optional(),
  generation: z.string().max(64).optional(),
  target: z.string().max(4096).optional(),
});
export const LogQuery = z.strictObject({ after: z.int().min(0).optional() });
export const AuditQuery = z.strictObject({ limit: z.int().min(1).max(10000).optional() });

// --- request bodies ---------------------------------------------------------------

export const DrillBody = z.strictObject({ source: z.string().optional() });
/** The Summit aliases' bodies (docs/daemon.md, "Summit aliases"): their field names, not Lifeboat's. */
export const RecoveryFullBody = z.strictObject({ backupId: z.string().optional(), targetTime: z.string(), dryRun: z.boolean().optional() });
export const RecoveryPostgresBody = z.strictObject({ targetTime: z.string(), dryRun: z.boolean().optional() });
export const RecoveryNeo4jBody = z.strictObject({ backupId: z.string().optional(), includeIncrementals: z.boolean().optional(), dryRun: z.boolean().optional() });
export const DrillsRunBody = z.strictObject({ scenario: z.string(), dryRun: z.boolean().optional() });
export const RoleName = z.enum(['viewer', 'operator', 'admin']);
// Bodies whose fields are options of the model (POST /restores, /recoveries, /repositories/:name/check,
// /tokens) are declared in src/api/bodies.ts: the model is server-side code, and this module is not.

// --- responses --------------------------------------------------------------------

/** `{"error": {code, message, hint}}` with the HTTP status of the code (docs/exit-codes.md). */
export const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string(), hint: z.string().nullable().optional() }) });

export const JobKind = z.enum(['backup', 'restore', 'drill', 'check', 'forget', 'prune', 'rotate', 'replicate', 'rebuild', 'group-backup', 'group-restore', 'group-drill']);
export const JobStatus = z.enum(['queued', 'running', 'succeeded', 'failed', 'skipped']);
/**
 * A running job's progress (docs/progress.md): the engine's phase and counts, and, when
 * known, totals, percent (0–100, 100 on the last event), rate (bytes/s) and ETA. Every
 * field is optional and more may come: a job started by an older lifeboat sends fewer.
 */
export const JobProgress = z
  .object({
    phase: z.string().optional(),
    files: z.number().optional(),
    bytes: z.number().optional(),
    total_files: z.number().optional(),
    total_bytes: z.number().optional(),
    percent: z.number().optional(),
    rate: z.number().optional(),
    eta_seconds: z.number().optional(),
    elapsed_seconds: z.number().optional(),
  })
  .catchall(z.unknown());

export const Job = z.object({
  id: z.string(),
  kind: JobKind,
  source: z.string().nullable(),
  repository: z.string().nullable(),
  status: JobStatus,
  trigger: z.string(),
  actor: z.string().nullable(),
  params: z.record(z.string(), z.unknown()),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  duration_ms: z.number().nullable(),
  /** Phase, counts, totals, percent, rate, ETA and elapsed_seconds while running (the engine's progress events). */
  progress: JobProgress.nullable(),
  result: z.unknown(),
  error: z.string().nullable(),
  error_code: z.string().nullable(),
  /** What the operator can do about the error (the job's own hint, as the CLI printed it). */
  error_hint: z.string().nullable(),
  exit_code: z.number().nullable(),
});
export const Jobs = z.object({ jobs: z.array(Job) });

/** What a Summit alias answers: the Lifeboat call it stands for, the plan, and the jobs it started (none on a dry run). */
export const AliasAnswer = z.object({
  alias_of: z.string(),
  recovery: z.string().nullable(),
  dry_run: z.boolean(),
  plan: z.array(z.object({ source: z.string(), kind: z.string(), target: z.string(), time: z.string().nullable(), snapshot: z.string().nullable(), group: z.string().optional(), point: z.string().optional() })),
  jobs: z.array(Job),
  notes: z.array(z.string()),
});
export const RecoveryStatus = z.object({
  state: z.enum(['idle', 'running', 'succeeded', 'failed']),
  recovery: z.string().nullable(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  jobs: z.array(Job),
});

export const LogLine = z.object({ seq: z.number(), time: z.string(), stream: z.string(), line: z.string() });

const ArchiveCommandState = z.object({
  failed_count: z.number(),
  failing: z.boolean(),
  last_failed_wal: z.string().nullable(),
  last_failed_at: z.string().nullable(),
  last_archived_wal: z.string().nullable(),
  last_archived_at: z.string().nullable(),
});

/** Log archiving of a source: a streamer or replicator of the daemon's, or a server's archive_command it watches. */
export const ArchiveState = z.object({
  method: z.enum(['stream', 'replicate', 'archive_command']),
  up: z.boolean(),
  /** ok, lagging (up, but older than the RPO target), failing (archive_command fails), down, starting. */
  state: z.enum(['ok', 'lagging', 'failing', 'down', 'starting']),
  restarts: z.number(),
  lag_seconds: z.number().nullable(),
  archived_through: z.string().nullable(),
  last_status_at: z.string().nullable(),
  error: z.string().nullable(),
  hint: z.string().nullable(),
  last_error: z.string().nullable(),
  last_error_at: z.string().nullable(),
  archive_command: ArchiveCommandState.nullable(),
});

export const Source = z.object({
  name: z.string(),
  kind: z.string(),
  repository: z.string(),
  continuous: z.boolean(),
  last_backup: z.object({ snapshot_id: z.string(), time: z.string(), size_bytes: z.number(), duration_ms: z.number() }).nullable(),
  last_success_at: z.string().nullable(),
  /** Age of the newest recoverable data; null while nothing is recoverable. */
  rpo_seconds: z.number().nullable(),
  rpo_target_seconds: z.number().nullable(),
  /** Measured by the newest drill. */
  rto_seconds: z.number().nullable(),
  rto_target_seconds: z.number().nullable(),
  last_drill: z.object({ time: z.string(), ok: z.boolean(), rto_seconds: z.number().nullable(), rpo_seconds: z.number().nullable() }).nullable(),
  archive: ArchiveState.nullable(),
  failing: z.boolean(),
});

export const Backup = z.object({
  snapshot_id: z.string(),
  source: z.string(),
  kind: z.string(),
  repository: z.string(),
  time: z.string(),
  size_bytes: z.number(),
  added_bytes: z.number(),
  duration_ms: z.number(),
});

export const Drill = z.object({
  source: z.string(),
  repository: z.string(),
  time: z.string(),
  ok: z.boolean(),
  rto_seconds: z.number().nullable(),
  rpo_seconds: z.number().nullable(),
  snapshot: z.string().nullable(),
  error: z.string().nullable(),
});

export const RepositoryState = z.object({
  name: z.string(),
  last_check: z.object({ time: z.string(), ok: z.boolean() }).nullable(),
  key_epoch_created: z.string().nullable().optional(),
});

export const Status = z.object({
  version: z.string(),
  started_at: z.string(),
  schedules: z.array(z.object({ schedule: z.string(), next: z.string().nullable() })),
  repositories: z.array(RepositoryState),
  running_jobs: z.number(),
});

/** A consistency group (docs/groups.md): members, newest point, its hold and age, the newest capture. */
export const Group = z.object({
  name: z.string(),
  repository: z.string(),
  members: z.array(z.object({ name: z.string(), kind: z.string() })),
  /** freeze and thaw configured (writes held); without them the positions are read back to back. */
  hooks: z.boolean(),
  max_hold_ms: z.number(),
  last_point: z.object({ id: z.string(), time: z.string(), hold_ms: z.number(), max_hold_ms: z.number(), frozen: z.boolean() }).nullable(),
  points: z.number(),
  /** now − the newest point's time. */
  rpo_seconds: z.number().nullable(),
  schedule_interval_seconds: z.number().nullable(),
  last_capture: z.object({ job: z.string(), status: z.string(), finished_at: z.string().nullable(), error_code: z.string().nullable(), error: z.string().nullable() }).nullable(),
  failing: z.boolean(),
  /** The newest `group drill`: one RTO for the whole group. */
  last_drill: z.object({ time: z.string(), ok: z.boolean(), rto_seconds: z.number().nullable(), point: z.string().nullable(), error: z.string().nullable() }).nullable(),
});

/** A stored point, as `lifeboat group points NAME --json` prints it. */
export const GroupPoint = z.object({
  v: z.number(),
  group: z.string(),
  id: z.string(),
  time: z.string(),
  hold_ms: z.number(),
  max_hold_ms: z.number(),
  frozen: z.boolean(),
  members: z.array(z.object({ name: z.string(), kind: z.string(), position: z.record(z.string(), z.unknown()) }).catchall(z.unknown())),
});
/** A group restore: its plan (`group restore --dry-run --json`) and the job, or none on a dry run. */
export const GroupRestoreAnswer = z.object({ plan: z.record(z.string(), z.unknown()), job: Job.nullable() });
export const GroupPoints = z.object({ group: z.string(), points: z.array(GroupPoint), unreadable: z.array(z.string()) });

/** One entry of a snapshot directory (the snapshot browser). */
export const SnapshotEntry = z.object({
  name: z.string(),
  path: z.string(),
  type: z.string(),
  size: z.number().nullable(),
  mode: z.string(),
  mtime: z.string().nullable(),
  target: z.string().nullable(),
});
/** A directory of a snapshot, one level (or the one entry of a file); `truncated` past the listing's bound. */
/** A one-use link to one file of a snapshot (POST …/file-ticket): GET it within a minute, no token needed. */
export const FileTicket = z.object({
  url: z.string().describe('GET it (no Authorization header: the link is the credential), once, before expires_at'),
  expires_at: z.string(),
});
export const TicketParam = z.strictObject({ ticket: z.string().regex(/^[A-Za-z0-9_-]{43}$/) });
export const SnapshotTree = z.object({
  repository: z.string(),
  snapshot: z.string(),
  path: z.string(),
  type: z.string(),
  size: z.number().nullable(),
  entries: z.array(SnapshotEntry),
  truncated: z.boolean(),
});

/** What restoring a source to a moment (or from a snapshot) would do: nothing is started. */
export const RestorePlan = z.object({
  source: z.string(),
  kind: z.string(),
  repository: z.string(),
  /** snapshot: the files of one backup; replay: a base backup and the source's log replayed to `time`. */
  method: z.enum(['snapshot', 'replay']),
  time: z.string().nullable(),
  /** SQLite, Redis: the transaction the replay stops at (`included`: up to and including it; else just before it). */
  txn: z.object({ number: z.number(), included: z.boolean(), generation: z.string().nullable() }).nullable().optional(),
  /** The backup restored (the base of a replay). */
  snapshot: z.object({ id: z.string(), time: z.string(), size_bytes: z.number() }).nullable(),
  /** The target checked (or suggested: a new directory below the first restore root; null without roots). */
  target: z.string().nullable(),
  target_suggested: z.boolean(),
  /** From the newest passed drill of the source: how long its restore took. */
  expected_seconds: z.number().nullable(),
  last_drill: z.object({ time: z.string(), ok: z.boolean(), rto_seconds: z.number().nullable() }).nullable(),
  /** What would refuse the restore now (target, role, a running restore); empty when it can start. */
  problems: z.array(z.object({ code: z.string(), message: z.string(), hint: z.string().nullable() })),
  /** The call that starts it. */
  start: z.object({ method: z.literal('POST'), url: z.string(), body: z.record(z.string(), z.unknown()) }),
  notes: z.array(z.string()),
});

/** GET /groups/:name/restore-plan: a time or a point. */
export const GroupPlanQuery = z.strictObject({ time: z.string().max(64).optional(), point: z.string().max(64).optional() });
/** What restoring a group would do: suggested targets, the group restore's dry-run plan, what refuses it, and the call that starts it. */
export const GroupRestorePlan = z.object({
  group: z.string(),
  time: z.string().nullable(),
  point: z.string().nullable(),
  /** A new directory per member below the first restore root; null without roots. */
  targets: z.record(z.string(), z.string()).nullable(),
  /** `group restore --dry-run --json`: {group, point, time, chosen, plan: [{member, kind, mechanism, position, target, base, ...}], notes}. */
  plan: z.record(z.string(), z.unknown()).nullable(),
  problems: z.array(z.object({ code: z.string(), message: z.string(), hint: z.string().nullable() })),
  start: z.object({ method: z.literal('POST'), url: z.string(), body: z.record(z.string(), z.unknown()) }),
  notes: z.array(z.string()),
});

export const WhoAmI = z.object({ id: z.string().optional(), name: z.string().optional(), role: z.string().optional() });

export const AuditEntry = z.object({
  id: z.number(),
  time: z.string(),
  actor: z.string().nullable(),
  role: z.string().nullable(),
  method: z.string(),
  path: z.string(),
  status_code: z.number(),
  outcome: z.string(),
  remote: z.string().nullable(),
  /** Refusals are aggregated: how many calls this row stands for. */
  count: z.number(),
});

/** A token as listed: never its secret. */
export const Token = z.object({
  id: z.string(),
  name: z.string(),
  role: z.string(),
  created_at: z.string(),
  last_used_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
  expires_at: z.string().nullable(),
});
/** A new token: its secret, shown once. */
export const TokenCreated = z.object({ id: z.string(), name: z.string(), role: z.string(), token: z.string(), expires_at: z.string().nullable() });
export const TokenRevoked = z.object({ revoked: z.number(), id: z.string(), name: z.string() });
export const RebuildCounts = z.object({ backups: z.number(), drills: z.number() });
export const HealthStatus = z.object({ status: z.string() });

export type ErrorBody = z.infer<typeof ErrorBody>;
export type Job = z.infer<typeof Job>;
export type Jobs = z.infer<typeof Jobs>;
export type LogLine = z.infer<typeof LogLine>;
export type ArchiveState = z.infer<typeof ArchiveState>;
export type Source = z.infer<typeof Source>;
export type Backup = z.infer<typeof Backup>;
export type Drill = z.infer<typeof Drill>;
export type Status = z.infer<typeof Status>;
export type RepositoryState = z.infer<typeof RepositoryState>;
export type TokenCreated = z.infer<typeof TokenCreated>;
export type DrillBody = z.infer<typeof DrillBody>;
export type Group = z.infer<typeof Group>;
export type GroupPoints = z.infer<typeof GroupPoints>;
export type SnapshotEntry = z.infer<typeof SnapshotEntry>;
export type SnapshotTree = z.infer<typeof SnapshotTree>;
export type FileTicket = z.infer<typeof FileTicket>;
export type RestorePlan = z.infer<typeof RestorePlan>;
export type GroupRestorePlan = z.infer<typeof GroupRestorePlan>;

// --- recoverable windows (engine/window.ts; `lifeboat window --json`) ----------------

export const WindowSnapshot = z.object({ id: z.string(), short_id: z.string(), time: z.string(), consistent_at: z.string() });
export const WindowCoverage = z.object({
  log: z.enum(['wal-archive', 'wal-stream', 'sqlite', 'redis', 'oplog']),
  from: z.string(),
  to: z.string(),
  generation: z.string().nullable(),
  base: z.string().nullable(),
});
export const WindowGap = z.object({ from: z.string(), to: z.string(), reason: z.string() });
export const WindowDrill = z.object({
  time: z.string(),
  ok: z.boolean(),
  snapshot: z.string().nullable(),
  rto_seconds: z.number().nullable(),
  rpo_seconds: z.number().nullable(),
  error: z.string().nullable(),
});
const WindowFields = {
  name: z.string(),
  /** The source's kind, or `group`. */
  kind: z.string(),
  earliest: z.string().nullable(),
  latest: z.string().nullable(),
  /** Any moment inside `coverage` can be chosen; false: only the moments of `snapshots` (a group's points). */
  continuous: z.boolean(),
  snapshots: z.array(WindowSnapshot),
  coverage: z.array(WindowCoverage),
  gaps: z.array(WindowGap),
  last_drill: WindowDrill.nullable(),
  last_verified_drill: WindowDrill.nullable(),
  notes: z.array(z.string()),
};
/** A source's recoverable window; a group's also lists each member's (`members`, one level). */
export const RecoverableWindow = z.object({ ...WindowFields, members: z.array(z.object(WindowFields)).optional() });
export type RecoverableWindow = z.infer<typeof RecoverableWindow>;
