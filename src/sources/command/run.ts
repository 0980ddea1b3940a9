/**
 * Running a dump or load command: argv only (never a shell), in its own process
 * group so that an interruption stops a wrapper and what it started, with a bounded
 * tail of its stderr, and its end told as one line naming the command, its exit
 * status or signal, and the last line it wrote on stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { LifeboatError, type ErrorCode } from '../../errors.js';
import { redact } from '../../util/redact.js';
import { findExecutable } from '../../util/tied-child.js';
import { STDERR_TAIL } from './point.js';

export interface CommandSpec {
  argv: readonly string[];
  /** Added to the environment (values never recorded or printed). */
  env?: Readonly<Record<string, string>> | undefined;
  cwd?: string | undefined;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last STDERR_TAIL bytes it wrote on stderr, as UTF-8 (a split character at the start is dropped). */
  stderrTail: string;
}

export interface Running {
  child: ChildProcess;
  exit: Promise<Exit>;
  /** Signals the command's whole process group (a wrapper and its children); a no-op once it ended. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM to the group, SIGKILL if it is still there after STOP_GRACE_MS; resolves once it ended. */
  stop(): Promise<Exit>;
}

/**
 * How long a command stopped with SIGTERM may take to clean up (a wrapper removing its
 * temporary file) before SIGKILL: a dump that ignores SIGTERM must not hold a backup open.
 */
export const STOP_GRACE_MS = 10_000;

/** The command as one short string for messages (redacted: a URL's password never shows). */
export function shown(argv: readonly string[]): string {
  const s = redact(argv.join(' '));
  return s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

/**
 * The environment of a dump or load command: ours without Lifeboat's own secrets
 * (the repository password), plus the source's `env`.
 */
export function commandEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^LIFEBOAT_/.test(k) && /PASSWORD|TOKEN|SECRET|KEY/.test(k)) delete env[k];
  return { ...env, ...extra };
}

/** Refuses an empty argv or a program that is not there, before anything starts (USAGE). */
export function checkProgram(role: 'dump' | 'load', spec: CommandSpec): string {
  const program = spec.argv[0];
  if (program === undefined || program === '') {
    throw new LifeboatError('USAGE', `the ${role} command is empty`, { hint: role === 'dump' ? 'give the program and its arguments after --, or --preset' : 'give the load program after --, or --output FILE' });
  }
  const resolved = program.includes('/') && spec.cwd !== undefined ? path.resolve(spec.cwd, program) : program;
  if (!findExecutable(resolved)) {
    throw new LifeboatError('USAGE', `the ${role} command ${program} is not ${program.includes('/') ? 'an executable file' : 'on the PATH'}`, {
      hint: 'install it, or give its full path',
    });
  }
  return program;
}

export function start(spec: CommandSpec, stdio: ['ignore' | 'pipe', 'pipe' | 'inherit', 'pipe']): Running {
  const [program, ...args] = spec.argv as [string, ...string[]];
  // Its own process group: an interruption must reach a wrapper's children too (the etcd preset's).
  const child = spawn(program, args, { stdio, env: commandEnv(spec.env), ...(spec.cwd ? { cwd: spec.cwd } : {}), detached: true });
  let tail = Buffer.alloc(0);
  child.stderr?.on('data', (d: Buffer) => {
    tail = tail.length + d.length <= STDERR_TAIL ? Buffer.concat([tail, d]) : Buffer.concat([tail, d]).subarray(-STDERR_TAIL);
  });
  const exit = new Promise<Exit>((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, stderrTail: `cannot start ${program}: ${err.message}` }));
    child.once('close', (code, signal) => resolve({ code, signal, stderrTail: tail.toString('utf8').replace(/^\uFFFD+/, '') }));
  });
  let ended = false;
  void exit.then(() => (ended = true));
  const kill = (signal: NodeJS.Signals = 'SIGTERM') => {
    if (ended || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      child.kill(signal);
    }
  };
  return {
    child,
    exit,
    kill,
    async stop() {
      kill('SIGTERM');
      const escalate = setTimeout(() => kill('SIGKILL'), STOP_GRACE_MS);
      try {
        return await exit;
      } finally {
        clearTimeout(escalate);
      }
    },
  };
}

/** The last non-empty line of a stderr tail, bounded for a one-line message. */
export function lastLine(stderrTail: string): string | undefined {
  const line = stderrTail.split('\n').map((l) => l.trim()).filter(Boolean).pop();
  if (line === undefined) return undefined;
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

/** How a command ended, as words: "exited with status 2", "was killed by SIGKILL". */
export function ending(e: Pick<Exit, 'code' | 'signal'>): string {
  if (e.signal) return `was killed by ${e.signal}`;
  return e.code === null ? 'could not start' : `exited with status ${e.code}`;
}

/** The one-line error for a command that did not exit 0. */
export function commandFailed(code: ErrorCode, role: 'dump' | 'load', argv: readonly string[], e: Exit, hint: string): LifeboatError {
  const said = lastLine(e.stderrTail);
  return new LifeboatError(code, `the ${role} command ${shown(argv)} ${ending(e)}${said ? `: ${redact(said)}` : ''}`, { hint });
}
