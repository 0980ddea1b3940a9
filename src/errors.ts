/**
 * Errors are data: every failure a user can cause carries a stable code, a one-line
 * message, and a hint an operator can act on. One table maps codes to process exit
 * codes (and, later, HTTP statuses) so scripts and the API agree on what went wrong.
 */

export type ErrorCode =
  | 'USAGE'
  | 'FAILED'
  | 'PARTIAL'
  | 'REPO_NOT_FOUND'
  | 'REPO_EXISTS'
  | 'LOCKED'
  | 'WRONG_PASSWORD'
  | 'NO_PASSWORD'
  | 'CORRUPT'
  | 'UNSUPPORTED_FORMAT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'STORE_UNAVAILABLE'
  | 'NO_SPACE'
  | 'PERMISSION'
  | 'UNSAFE_PATH'
  | 'SOURCE_UNAVAILABLE'
  | 'SOURCE_CORRUPT'
  | 'TARGET_EXISTS'
  | 'CONFIG_INVALID'
  | 'UNAUTHENTICATED'
  | 'JOB_RUNNING'
  | 'HISTORY_AT_RISK'
  | 'TARGET_UNSAFE'
  | 'RESTORE_INCOMPLETE'
  | 'TARGET_CHANGED'
  | 'DEGRADED'
  | 'ARCHIVE_UNREADABLE'
  | 'UNSAFE_SPOOL'
  | 'UNSAFE_SCHEMA'
  | 'AMBIGUOUS_SOURCE'
  | 'RECOVERY_FAILED'
  | 'CONFIG_UNREACHABLE'
  | 'LISTEN_UNSAFE'
  | 'RESTORE_NOT_ALLOWED'
  | 'BUSY'
  | 'TOKEN_EXISTS'
  | 'WRONG_SOURCE'
  | 'JOB_CRASHED'
  | 'JOB_PROTOCOL'
  | 'HOLD_EXCEEDED'
  | 'ARCHIVE_BEHIND'
  | 'HOLD_BROKEN'
  | 'INTERRUPTED';

interface CodeInfo {
  exit: number;
  http: number;
  summary: string;
}

/** The documented table (docs/exit-codes.md is generated from the same facts). */
export const ERROR_TABLE: Record<ErrorCode, CodeInfo> = {
  FAILED: { exit: 1, http: 500, summary: 'the command failed (see the message)' },
  USAGE: { exit: 2, http: 400, summary: 'bad command line or input' },
  PARTIAL: { exit: 3, http: 207, summary: 'finished, but some source files could not be read' },
  REPO_NOT_FOUND: { exit: 10, http: 404, summary: 'no repository at that location' },
  REPO_EXISTS: { exit: 2, http: 409, summary: 'a repository already exists there' },
  LOCKED: { exit: 11, http: 423, summary: 'the repository is locked by another process' },
  WRONG_PASSWORD: { exit: 12, http: 401, summary: 'no key slot opens with that password' },
  NO_PASSWORD: { exit: 12, http: 401, summary: 'no password was given' },
  CORRUPT: { exit: 13, http: 500, summary: 'stored data failed authentication or is missing' },
  UNSUPPORTED_FORMAT: { exit: 14, http: 500, summary: 'repository format version not supported' },
  NOT_FOUND: { exit: 15, http: 404, summary: 'snapshot, key or path not found' },
  ALREADY_EXISTS: { exit: 1, http: 409, summary: 'object already exists' },
  STORE_UNAVAILABLE: { exit: 16, http: 503, summary: 'the storage backend cannot be reached' },
  NO_SPACE: { exit: 17, http: 507, summary: 'no space left on the destination' },
  PERMISSION: { exit: 18, http: 403, summary: 'permission denied' },
  UNSAFE_PATH: { exit: 13, http: 500, summary: 'a stored name would write outside the target' },
  SOURCE_UNAVAILABLE: { exit: 19, http: 502, summary: 'a database cannot be reached, refused the login, or went down while it was read' },
  SOURCE_CORRUPT: { exit: 20, http: 422, summary: 'a source database is damaged or is not a database' },
  TARGET_EXISTS: { exit: 21, http: 409, summary: 'the restore target already exists (nothing was overwritten)' },
  CONFIG_INVALID: { exit: 2, http: 400, summary: 'the configuration file is malformed (the message names the key and line)' },
  UNAUTHENTICATED: { exit: 22, http: 401, summary: 'no valid API token was given' },
  JOB_RUNNING: { exit: 23, http: 409, summary: 'the same job is already running' },
  HISTORY_AT_RISK: { exit: 24, http: 409, summary: 'forget would wipe older history; nothing was removed (--force to proceed)' },
  TARGET_UNSAFE: { exit: 25, http: 422, summary: 'the restore target, or a directory on the way, can be changed by other users (nothing was written)' },
  RESTORE_INCOMPLETE: { exit: 26, http: 500, summary: 'the restore stopped part-way; the files listed are missing (no partial file was left under its name)' },
  TARGET_CHANGED: { exit: 27, http: 409, summary: 'something else added or removed names in the target while a --delta restore ran; it does not equal the snapshot (nothing that appeared was removed)' },
  DEGRADED: { exit: 28, http: 207, summary: "done, but not on every destination of the repository: one was left out (down, full, refusing writes, failing to list, or not holding this repository); the others hold the work, and `lifeboat repair` copies it once that one is back" },
  UNSAFE_SPOOL: { exit: 30, http: 500, summary: 'a spool or scratch directory is not private to this user (a symlink, another owner, or open to others)' },
  UNSAFE_SCHEMA: { exit: 31, http: 422, summary: 'a backed-up SQLite schema statement is not a single CREATE of the object it names' },
  AMBIGUOUS_SOURCE: { exit: 35, http: 409, summary: '"latest" or a time names no source in a repository holding several (nothing was restored)' },
  RECOVERY_FAILED: { exit: 36, http: 500, summary: 'the restored server did not start, recover or pass its checks' },
  CONFIG_UNREACHABLE: { exit: 37, http: 424, summary: 'the configuration is valid, but something it names is missing or unreachable' },
  LISTEN_UNSAFE: { exit: 40, http: 500, summary: 'the daemon would listen beyond loopback without TLS (--insecure) or without server.metrics_token' },
  RESTORE_NOT_ALLOWED: { exit: 41, http: 403, summary: 'an API restore target outside server.restore_roots, inside a repository or the state directory, or an operator restore without restore roots' },
  BUSY: { exit: 42, http: 429, summary: 'too many requests wait for the same repository; retry after the Retry-After seconds' },
  TOKEN_EXISTS: { exit: 43, http: 409, summary: 'an active API token already has that name' },
  WRONG_SOURCE: { exit: 44, http: 409, summary: 'the snapshot belongs to another source than the one named' },
  JOB_CRASHED: { exit: 45, http: 500, summary: 'a daemon job\'s process ended without reporting why (killed by a signal, or crashed)' },
  JOB_PROTOCOL: { exit: 46, http: 500, summary: 'a daemon job\'s process broke the job protocol (a malformed or oversized event); it was stopped' },
  HOLD_EXCEEDED: { exit: 47, http: 500, summary: 'a group capture held writes longer than its max_hold; thaw ran and no point was stored' },
  ARCHIVE_BEHIND: { exit: 48, http: 409, summary: "a member's own archive (WAL, replicated log) does not reach the group point's position; no point was stored, or nothing was restored" },
  HOLD_BROKEN: { exit: 49, http: 409, summary: "writes reached a group member while the group's freeze hook said they were held (an application that restarted while frozen, or a writer the hook does not stop); thaw ran and no point was stored" },
  ARCHIVE_UNREADABLE: { exit: 128, http: 502, summary: "`pg archive-get` could not read a WAL file the archive may hold (a store down, a damaged or forged object, a wrong password): over 125, so PostgreSQL stops recovery with FATAL instead of ending it early and promoting on a partial archive; fix the cause and start the server again" },
  INTERRUPTED: { exit: 130, http: 500, summary: 'interrupted by a signal' },
};

export class LifeboatError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'LifeboatError';
    this.code = code;
    this.hint = opts.hint;
  }

  get exitCode(): number {
    return ERROR_TABLE[this.code].exit;
  }
}

export function isLifeboatError(err: unknown, code?: ErrorCode): err is LifeboatError {
  return err instanceof LifeboatError && (code === undefined || err.code === code);
}

/** Node system error code (ENOENT, EACCES, ...) if there is one. */
export function errno(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

/**
 * Translates an operating-system error met while touching the store into a
 * LifeboatError with an actionable hint; anything else passes through unchanged.
 */
export function fromSystemError(err: unknown, what: string): unknown {
  if (err instanceof LifeboatError) return err;
  switch (errno(err)) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new LifeboatError('NO_SPACE', `${what}: no space left on device`, {
        hint: 'free space on the destination; data already stored is intact',
        cause: err,
      });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new LifeboatError('PERMISSION', `${what}: permission denied`, {
        hint: 'check ownership and mode of the repository directory',
        cause: err,
      });
    case 'ENOTDIR':
    case 'EISDIR':
      return new LifeboatError('FAILED', `${what}: a file stands where a directory should be, or the reverse (${errno(err)})`, {
        hint: 'the layout at that path was changed by hand or damaged; run `lifeboat check` and restore the layout from another copy',
        cause: err,
      });
    default:
      return err;
  }
}
