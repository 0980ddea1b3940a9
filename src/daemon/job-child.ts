/**
 * The daemon's end of the job protocol (job-protocol.ts): starts `lifeboat job` as a
 * child process, hands it the spec on stdin, and reads its typed events on fd 3 while
 * stdout and stderr lines go to the job's log. Everything read is bounded, and a child
 * that breaks the protocol (or crashes, or is killed) fails its own job with a code of
 * its own: nothing a child writes can make the daemon allocate without limit or throw.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { ErrorCode } from '../errors.js';
import type { LifeboatConfig } from '../config/config.js';
import { JOB_EVENT_FD, JOB_PROTOCOL_VERSION, MAX_CHANNEL_BYTES, MAX_EVENT_BYTES, MAX_LOG_EVENTS, PROGRESS_INTERVAL_MS, JobProtocolError, parseJobEvent, type JobSpec, type ProgressEvent } from './job-protocol.js';

/** The lifeboat a job runs: this installation's, so daemon and child are the same version. */
export const CLI = fileURLToPath(new URL('../../bin/lifeboat.js', import.meta.url));

/**
 * A log line longer than this is cut (and says so): one runaway line must not hold
 * the daemon's memory, and nobody reads 64 KiB of one line in a job log.
 */
const MAX_LOG_LINE = 64 * 1024;

/**
 * How long after the child's exit its pipes may stay open. A process it started
 * (pg_basebackup, say) inherits them and outlives a child killed with SIGKILL: the
 * job must end anyway, and what that orphan writes later is nobody's log.
 */
const DRAIN_AFTER_EXIT_MS = 5_000;

/** Why a job failed, as its catalog row and the API report it. */
export interface JobFailure {
  code: ErrorCode;
  message: string;
  hint?: string;
}

export interface JobOutcome {
  /** The child's exit status, or 128 + the signal's number when a signal ended it. */
  exitCode: number;
  signal: NodeJS.Signals | null;
  /** The `result` event's value; null when the command sent none. */
  result: unknown;
  /** Set exactly when the job failed: from the `error` event, else from how the child ended. */
  error?: JobFailure;
  /**
   * The job did its work but left a destination of the repository out (DEGRADED, exit
   * 28): not a failure, so callers that only read (listings, browsing, plans) take the
   * result as it is; the job runner records it.
   */
  degraded?: JobFailure;
}

export interface RunHooks {
  /** The catalog's job id, handed to the child in its spec. */
  id?: string;
  onLine?: (stream: 'stdout' | 'stderr', line: string) => void;
  onProgress?: (p: Omit<ProgressEvent, 'v' | 'type'>) => void;
  onLog?: (level: 'info' | 'warning', message: string) => void;
  onSpawn?: (c: ChildProcess) => void;
  /** Added to the child's environment: secrets (childEnv), never on argv or in the spec. */
  env?: Record<string, string>;
  /** The script started as `node ENTRY job` (default: this installation's CLI). */
  entry?: string;
  /**
   * The child's stdout as bytes, for a command whose output is data (`dump`): handed
   * over at spawn, not split into log lines. The caller reads it (back-pressure is its).
   */
  stdout?: (stdout: Readable) => void;
}

/**
 * Splits a byte stream into lines, holding at most `max` bytes of an unfinished one.
 * A longer line goes to onOverflow (its first `max` bytes); the rest of it is skipped.
 */
function lines(stream: Readable, max: number, onLine: (line: string) => void, onOverflow: (head: Buffer) => void): void {
  let held: Buffer[] = [];
  let heldBytes = 0;
  let skipping = false;
  const take = (piece: Buffer, complete: boolean) => {
    if (!skipping) {
      if (heldBytes + piece.length > max) {
        onOverflow(Buffer.concat([...held, piece.subarray(0, max - heldBytes)]));
        skipping = true;
      } else if (complete) onLine(Buffer.concat([...held, piece]).toString('utf8'));
      else held.push(piece);
      heldBytes += piece.length;
    }
    if (complete || skipping) held = [];
    if (complete) {
      heldBytes = 0;
      skipping = false;
    }
  };
  stream.on('data', (chunk: Buffer) => {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      take(chunk.subarray(start, nl), true);
      start = nl + 1;
    }
    if (start < chunk.length) take(chunk.subarray(start), false);
  });
  stream.on('end', () => {
    if (held.length > 0) onLine(Buffer.concat(held).toString('utf8'));
  });
}

/**
 * Runs `lifeboat --json --config C --repo R ARGV…` as a job child (`lifeboat job -- ARGV…`,
 * the spec on stdin) and resolves when it has exited and its pipes are drained. Never
 * rejects: a child that cannot start fails with JOB_CRASHED.
 */
export function runLifeboat(config: LifeboatConfig, repository: string, argv: string[], hooks: RunHooks = {}): Promise<JobOutcome> {
  const file = path.resolve(config.file);
  const spec: JobSpec = { v: JOB_PROTOCOL_VERSION, id: hooks.id ?? '', argv, repository, config: file };
  return new Promise((resolve) => {
    // The command again after `--`, for `ps` only (the spec is what runs, and the child
    // refuses a mismatch): an operator sees what each job runs, as with any process.
    const child = spawn(process.execPath, [hooks.entry ?? CLI, 'job', '--', ...argv], {
      env: { ...process.env, ...hooks.env, LIFEBOAT_CONFIG: file },
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    let result: unknown = null;
    let hasResult = false;
    let reported: JobFailure | undefined;
    let broken: string | undefined;
    let channelBytes = 0;
    let logEvents = 0;
    let lastProgress = 0;
    const events = child.stdio[JOB_EVENT_FD] as Readable;
    const breakProtocol = (why: string) => {
      if (broken !== undefined) return;
      broken = why;
      // Nothing more it says can be trusted: stop it and stop listening.
      child.kill('SIGKILL');
      events.destroy();
    };
    lines(
      events,
      MAX_EVENT_BYTES,
      (line) => {
        if (broken !== undefined || line === '') return;
        try {
          const e = parseJobEvent(line);
          if (reported) throw new JobProtocolError(`a ${e.type} event after the error event`);
          if (e.type === 'progress') {
            // The latest progress is what counts: one more within the interval is dropped
            // (never the last one, phase 'done': the job's record ends at 100%).
            if (e.phase !== 'done' && Date.now() - lastProgress < PROGRESS_INTERVAL_MS) return;
            lastProgress = Date.now();
            const { v: _v, type: _t, ...progress } = e;
            hooks.onProgress?.(progress);
          } else if (e.type === 'log') {
            if (++logEvents > MAX_LOG_EVENTS) throw new JobProtocolError(`more than ${MAX_LOG_EVENTS} log events`);
            hooks.onLog?.(e.level, e.message);
          } else if (e.type === 'result') {
            if (hasResult) throw new JobProtocolError('a second result event');
            hasResult = true;
            result = e.value;
          } else reported = { code: e.code, message: e.message, ...(e.hint !== undefined ? { hint: e.hint } : {}) };
        } catch (err) {
          breakProtocol(err instanceof JobProtocolError ? err.message : String(err));
        }
      },
      () => breakProtocol(`an event line longer than ${MAX_EVENT_BYTES} bytes`),
    );
    events.on('data', (chunk: Buffer) => {
      channelBytes += chunk.length;
      if (channelBytes > MAX_CHANNEL_BYTES) breakProtocol(`more than ${MAX_CHANNEL_BYTES} bytes of events`);
    });
    events.on('error', () => {}); // a destroyed or reset pipe: the exit decides
    if (hooks.stdout) hooks.stdout(child.stdout);
    for (const name of hooks.stdout ? (['stderr'] as const) : (['stdout', 'stderr'] as const)) {
      const emit = (line: string) => {
        if (line !== '') hooks.onLine?.(name, line);
      };
      lines(child[name], MAX_LOG_LINE, emit, (held) => emit(`${held.toString('utf8')}… (line cut at ${MAX_LOG_LINE} bytes)`));
    }
    // A child that exits before reading its spec closes stdin under us: not our error.
    child.stdin.on('error', () => {});
    child.stdin.end(JSON.stringify(spec));
    hooks.onSpawn?.(child);
    let done = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      if (done) return;
      done = true;
      settle(code, signal, spawnError);
    };
    // A child that never started has no exit and no close to wait for.
    child.on('error', (err) => {
      if (child.pid === undefined) finish(null, null, err);
    });
    child.on('exit', () => {
      setTimeout(() => {
        for (const stream of child.stdio) stream?.destroy();
      }, DRAIN_AFTER_EXIT_MS).unref();
    });
    child.on('close', (code, signal) => finish(code, signal));
    const settle = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      const exitCode = code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1);
      const failed = (f: JobFailure) => resolve({ exitCode, signal, result, error: f });
      if (spawnError) return failed({ code: 'JOB_CRASHED', message: `cannot start the job: ${spawnError.message}`, hint: `is ${process.execPath} still installed?` });
      if (broken !== undefined) return failed({ code: 'JOB_PROTOCOL', message: `the job's process broke the job protocol: ${broken}; it was stopped`, hint: 'restart the daemon after upgrading lifeboat (daemon and job must be the same version); the job log shows what the process printed' });
      if (reported?.code === 'DEGRADED') return resolve({ exitCode, signal, result, degraded: reported });
      if (reported) return failed(reported);
      if (exitCode === 0) return resolve({ exitCode, signal, result });
      // No error event: the process did not end by itself, or died before it could say why.
      if (signal === 'SIGTERM' || signal === 'SIGINT' || exitCode === 130) return failed({ code: 'INTERRUPTED', message: `the job was stopped${signal ? ` by ${signal}` : ''} before it finished`, hint: 'run it again' });
      failed({
        code: 'JOB_CRASHED',
        message: signal ? `the job's process was killed by ${signal}` : `the job's process exited with ${exitCode} without reporting an error`,
        hint: signal === 'SIGKILL' ? 'killed from outside (kill -9, or the kernel out of memory: see dmesg); the job log shows how far it got' : 'the job log shows what it printed; run the command of its first log line by hand to see more',
      });
    };
  });
}
