/**
 * The job protocol: what the daemon hands a job child and what the child reports back.
 * Shared by both sides, so it imports nothing daemon-only (the CLI loads it in every
 * job) and no schema library (it is checked by hand below, with bounds, because the
 * daemon must survive a child that writes anything at all).
 *
 * The daemon starts `lifeboat job` with four pipes: the spec goes in as one JSON
 * document on stdin; events come back as ND-JSON on fd 3; stdout and stderr stay the
 * human log of the job. docs/daemon.md ("The job protocol") describes it for people.
 */
import { ERROR_TABLE, type ErrorCode } from '../errors.js';

/** Bumped on any change a peer of the previous version would misread. */
export const JOB_PROTOCOL_VERSION = 1;

/** The child's descriptor for events (0–2 stay stdin, stdout and stderr). */
export const JOB_EVENT_FD = 3;

/**
 * The longest event line the daemon reads. A result is one line: the largest is a
 * `snapshots` listing, about 1 KiB per snapshot, so 16 MiB holds some 16 000 snapshots.
 */
export const MAX_EVENT_BYTES = 16 * 1024 * 1024;

/**
 * All event bytes one job may send. Progress comes at most twice a second (~150 bytes),
 * so a day-long backup sends ~26 MiB; 256 MiB leaves room for a large result on top.
 */
export const MAX_CHANNEL_BYTES = 256 * 1024 * 1024;

/** Log events one job may send: each is a row of the catalog, and a job's own output goes to stdout/stderr. */
export const MAX_LOG_EVENTS = 10_000;

/**
 * Progress reaches the catalog at most this often: the child sends it every 500 ms, and
 * a child sending more must not turn into a stream of database writes.
 */
export const PROGRESS_INTERVAL_MS = 250;

/** The longest spec the child reads on stdin: an argv of paths and excludes, never data. */
export const MAX_SPEC_BYTES = 1024 * 1024;

/** What the daemon hands a job child: the command and where it runs. Never a secret (env carries those). */
export interface JobSpec {
  v: typeof JOB_PROTOCOL_VERSION;
  /** The catalog's job id (empty for the daemon's own reads, which are no catalog jobs). */
  id: string;
  /** The command after the global options, as `lifeboat --repo R ARGV…` would take it. */
  argv: string[];
  /** The repository's name in the configuration file. */
  repository: string;
  /** The configuration file (absolute). */
  config: string;
}

export interface ProgressEvent {
  v: typeof JOB_PROTOCOL_VERSION;
  type: 'progress';
  phase: string;
  files: number;
  bytes: number;
  total_bytes?: number;
  /** Added in the same protocol version, all optional: an older child sends none of them. */
  total_files?: number;
  /** 0–100, present once the totals are final; 100 on the last event. */
  percent?: number;
  /** Bytes per second since the job's work started. */
  rate?: number;
  eta_seconds?: number;
}

/** The optional numeric fields of a progress event, in the order they are copied. */
export const PROGRESS_EXTRAS = ['total_bytes', 'total_files', 'percent', 'rate', 'eta_seconds'] as const;

/** The optional numbers of a progress event that are present and valid counts. */
export function progressExtras(e: Record<string, unknown>): Partial<Record<(typeof PROGRESS_EXTRAS)[number], number>> | undefined {
  const out: Partial<Record<(typeof PROGRESS_EXTRAS)[number], number>> = {};
  for (const k of PROGRESS_EXTRAS) {
    const x = e[k];
    if (x === undefined) continue;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) return undefined;
    out[k] = x;
  }
  return out;
}

/** A line meant for the job log that the child wants kept apart from its stdout/stderr. */
export interface LogEvent {
  v: typeof JOB_PROTOCOL_VERSION;
  type: 'log';
  level: 'info' | 'warning';
  message: string;
}

/** The command's result: what `--json` prints, as a value. At most one per job. */
export interface ResultEvent {
  v: typeof JOB_PROTOCOL_VERSION;
  type: 'result';
  value: unknown;
}

/** Why the command failed, exactly as the CLI reports it. At most one per job, the last event. */
export interface ErrorEvent {
  v: typeof JOB_PROTOCOL_VERSION;
  type: 'error';
  code: ErrorCode;
  message: string;
  hint?: string;
  exit: number;
}

export type JobEvent = ProgressEvent | LogEvent | ResultEvent | ErrorEvent;

/** A peer broke the protocol; `parseJobEvent` and `parseJobSpec` say how. */
export class JobProtocolError extends Error {
  override readonly name = 'JobProtocolError';
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;

function parseObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new JobProtocolError(`${what} is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (!isRecord(value)) throw new JobProtocolError(`${what} is not a JSON object`);
  if (value.v !== JOB_PROTOCOL_VERSION) throw new JobProtocolError(`${what} has protocol version ${JSON.stringify(value.v)}; this side speaks ${JOB_PROTOCOL_VERSION}`);
  return value;
}

/** One line of fd 3 as an event; a JobProtocolError for anything else. */
export function parseJobEvent(line: string): JobEvent {
  const e = parseObject(line, 'a job event');
  const v = JOB_PROTOCOL_VERSION;
  switch (e.type) {
    case 'progress':
    {
      const extras = progressExtras(e);
      if (typeof e.phase !== 'string' || !isCount(e.files) || !isCount(e.bytes) || !extras) break;
      return { v, type: 'progress', phase: e.phase, files: e.files, bytes: e.bytes, ...extras };
    }
    case 'log':
      if ((e.level !== 'info' && e.level !== 'warning') || typeof e.message !== 'string') break;
      return { v, type: 'log', level: e.level, message: e.message };
    case 'result':
      if (!('value' in e)) break;
      return { v, type: 'result', value: e.value };
    case 'error': {
      if (typeof e.code !== 'string' || !Object.hasOwn(ERROR_TABLE, e.code) || typeof e.message !== 'string' || !Number.isInteger(e.exit)) break;
      if (e.hint !== undefined && typeof e.hint !== 'string') break;
      return { v, type: 'error', code: e.code as ErrorCode, message: e.message, exit: e.exit as number, ...(e.hint !== undefined ? { hint: e.hint } : {}) };
    }
  }
  throw new JobProtocolError(`malformed job event of type ${JSON.stringify(e.type)}`);
}

/** The spec read on the child's stdin; a JobProtocolError for anything else. */
export function parseJobSpec(text: string): JobSpec {
  const s = parseObject(text, 'the job spec');
  if (typeof s.id !== 'string' || typeof s.repository !== 'string' || typeof s.config !== 'string') throw new JobProtocolError('the job spec needs string id, repository and config');
  if (!Array.isArray(s.argv) || s.argv.length === 0 || !s.argv.every((a) => typeof a === 'string')) throw new JobProtocolError('the job spec needs argv: a non-empty list of strings');
  return { v: JOB_PROTOCOL_VERSION, id: s.id, argv: s.argv as string[], repository: s.repository, config: s.config };
}
