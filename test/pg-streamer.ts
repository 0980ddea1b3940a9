/**
 * `lifeboat pg stream --json` as a real child process for tests, run as the postgres
 * user like archive_command: its status events collected as they arrive, its own pid
 * (runuser does not forward signals), and the pg_receivewal processes writing a spool.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { CLI } from './helpers.js';
import { PG_BIN, type ScratchCluster } from './pg-cluster.js';

export interface StatusEvent {
  time: string;
  kind: 'status';
  healthy: boolean;
  archivedThrough: string | null;
  error?: string;
  hint?: string;
}

/** Polls `fn` until it returns something other than undefined/false; fails naming `what` (a function is asked then, for what it sees at the time). */
export async function waitUntil<T>(what: string | (() => string), fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const cmdline = (pid: string) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
};

/** Processes whose program is `program` (basename) and whose arguments mention `needle`. */
export function processes(program: string, needle: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      const argv = cmdline(p);
      return (argv[0] ?? '').split('/').pop() === program && argv.some((a) => a.includes(needle));
    })
    .map(Number);
}

/** pg_receivewal processes writing into `spool`. */
export const receiversOf = (spool: string) => processes('pg_receivewal', spool);

export async function slotHolder(cluster: ScratchCluster, slot = 'lifeboat_main'): Promise<number | null> {
  const [row] = await cluster.query<{ pid: number | null }>('select active_pid as pid from pg_replication_slots where slot_name = $1', [slot]);
  return row?.pid ?? null;
}

export class Streamer {
  readonly statuses: StatusEvent[] = [];
  readonly lines: string[] = [];
  private constructor(
    readonly child: ChildProcess,
    readonly spool: string,
  ) {}

  static start(o: { cluster: ScratchCluster; repo: string; pw: string; spool: string; interval?: number }): Streamer {
    const child = spawn(
      'runuser',
      ['-u', 'postgres', '--', process.execPath, CLI, '--json', 'pg', 'stream', '--name', 'main', '--dsn', o.cluster.dsn, '--repo', o.repo, '--password-file', o.pw, '--spool', o.spool, '--bin-dir', PG_BIN, '--interval', `${o.interval ?? 1000}ms`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const s = new Streamer(child, o.spool);
    let partial = '';
    child.stdout?.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        s.lines.push(line);
        const e = JSON.parse(line) as { kind: string };
        if (e.kind === 'status') s.statuses.push(e as StatusEvent);
      }
    });
    child.stderr?.on('data', (d: Buffer) => s.lines.push(`stderr: ${d.toString().trim()}`));
    return s;
  }

  /** "exited N, " once the streamer has exited, for a failure's message. */
  exited(): string {
    const { exitCode, signalCode } = this.child;
    return exitCode !== null || signalCode !== null ? `exited ${exitCode ?? signalCode}, ` : '';
  }

  /** The node process of the streamer (the child is runuser). */
  pid(): number | undefined {
    return processes('node', this.spool).find((p) => cmdline(String(p)).includes('stream'));
  }

  /** The first status (after `from`) that satisfies `pred`. */
  async status(what: string, pred: (s: StatusEvent) => boolean, timeoutMs = 60_000, from = 0): Promise<StatusEvent> {
    return waitUntil(() => `${what} (${this.exited()}last lines: ${this.lines.slice(-5).join(' | ')})`, () => this.statuses.slice(from).find(pred), timeoutMs);
  }

  kill9(): void {
    const pid = this.pid();
    if (pid) process.kill(pid, 'SIGKILL');
  }

  async stop(): Promise<void> {
    const pid = this.pid();
    if (pid === undefined) return;
    const closed = new Promise((r) => this.child.once('close', r));
    process.kill(pid, 'SIGTERM');
    await closed;
  }
}
