/**
 * A group's freeze and thaw commands: argv lists run without a shell, in a process group
 * of their own so that a hook that overruns its limit is killed with everything it
 * started (a `sh -c 'sleep 60'` wrapper would otherwise leave the sleep behind, holding
 * stderr open). What a hook printed on stderr is kept (the last 2 KiB) for the error.
 */
import { spawn } from 'node:child_process';

export interface HookResult {
  /** Exit status, or null when it ended by a signal (ours on timeout, or another). */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Killed because it ran past its limit. */
  timedOut: boolean;
  /** Could not be started at all (ENOENT, EACCES): the message. */
  spawnError?: string;
  /** The end of what it wrote on stderr. */
  stderr: string;
  /** The end of what it wrote on stdout (only with `{ stdout: true }`). */
  stdout: string;
}

/** How much of a hook's stderr (and stdout, when asked for) is kept. */
const STDERR_TAIL = 2048;

/**
 * Runs argv with a hard time limit. Resolves when the process has exited (after a kill,
 * once the kill took effect); never rejects.
 */
export function runHook(argv: readonly string[], limitMs: number, cwd: string, opts: { stdout?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<HookResult> {
  return new Promise((resolve) => {
    let stderr = '';
    let stdout = '';
    let timedOut = false;
    let settled = false;
    const done = (r: Omit<HookResult, 'stderr' | 'stdout' | 'timedOut'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, timedOut, stderr: stderr.trim(), stdout: stdout.trim() });
    };
    const child = spawn(argv[0] as string, argv.slice(1), { cwd, stdio: ['ignore', opts.stdout ? 'pipe' : 'ignore', 'pipe'], detached: true, ...(opts.env ? { env: opts.env } : {}) });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        // The whole process group: what the hook started goes too.
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, Math.max(0, limitMs));
    child.stderr?.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString('utf8')).slice(-STDERR_TAIL);
    });
    child.stdout?.on('data', (b: Buffer) => {
      stdout = (stdout + b.toString('utf8')).slice(-STDERR_TAIL);
    });
    child.on('error', (err) => done({ code: null, signal: null, spawnError: err.message }));
    // 'close' comes once stderr is read to its end; a grandchild that left the process
    // group may hold stderr open, so 100 ms after 'exit' we stop waiting for it.
    child.on('close', (code, signal) => done({ code, signal }));
    child.on('exit', (code, signal) => {
      setTimeout(() => {
        child.stderr?.destroy();
        child.stdout?.destroy();
        done({ code, signal });
      }, 100);
    });
  });
}

/** "exit status 3", "killed by SIGTERM", "could not start: ..." */
export function hookOutcome(r: HookResult): string {
  if (r.spawnError !== undefined) return `could not start: ${r.spawnError}`;
  if (r.signal !== null) return `killed by ${r.signal}`;
  return `exit status ${String(r.code)}`;
}

/** What any freeze or thaw form came to, for the capture's errors. */
export interface HookRun {
  ok: boolean;
  /** Stopped because it ran past its limit (a command killed, a request aborted). */
  timedOut: boolean;
  /** "exit status 3", "POST http://host answered HTTP 503"; when timed out, the whole phrase ("was killed after running past its limit"). */
  outcome: string;
  /** The last line of what it said (stderr, or the response body). */
  said: string;
}

export function commandRun(r: HookResult): HookRun {
  return { ok: !r.timedOut && r.code === 0 && r.spawnError === undefined, timedOut: r.timedOut, outcome: r.timedOut ? 'was killed after running past its limit' : hookOutcome(r), said: r.stderr.split('\n').at(-1) ?? '' };
}
