/**
 * A running `lifeboat redis replicate` (the real CLI in a child process) whose --json
 * events can be awaited: tests wait for what the replicator proves (a status whose
 * archivedThrough has passed a moment, a new generation), never for a guessed time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI } from '../helpers.js';

export type Event = Record<string, unknown>;

export class RedisReplicator {
  readonly events: Event[] = [];
  readonly child: ChildProcess;
  /** stdout lines that are not events, and stderr: for failure messages. */
  output = '';
  readonly exited: Promise<number | null>;
  readonly startedAt = Date.now();

  constructor(args: string[], env: Record<string, string | undefined> = {}) {
    this.child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      if (l.startsWith('{')) {
        try {
          this.events.push(JSON.parse(l) as Event);
          return;
        } catch {
          // not an event
        }
      }
      this.output = `${this.output}${l}\n`.slice(-6000);
    });
    this.child.stderr?.on('data', (d: Buffer) => (this.output = `${this.output}${d.toString()}`.slice(-6000)));
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  }

  /** `lifeboat -r REPO --json redis replicate --url URL --name NAME EXTRA…`. */
  static start(repo: string, url: string, name: string, extra: string[] = [], env: Record<string, string | undefined> = {}): RedisReplicator {
    return new RedisReplicator(['-r', repo, '--json', 'redis', 'replicate', '--url', url, '--name', name, ...extra], env);
  }

  of(kind: string): Event[] {
    return this.events.filter((e) => e.kind === kind);
  }

  /** The newest archivedThrough of a healthy status (Unix ms), 0 before any. */
  get archivedThrough(): number {
    let t = 0;
    for (const e of this.events) if (e.kind === 'status' && e.healthy === true && typeof e.archivedThrough === 'string') t = Math.max(t, Date.parse(e.archivedThrough));
    return t;
  }

  async until(match: (e: Event) => boolean, what: string, timeoutMs = 60_000): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`redis replicate exited ${this.child.exitCode ?? this.child.signalCode} before ${what}: ${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`no ${what} from redis replicate in ${timeoutMs} ms: ${this.tail()}`);
      await sleep(20);
    }
  }

  /** Waits until the replicator proves everything the server did up to `ms` is in the repository. */
  async archived(ms: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.archivedThrough < ms) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`redis replicate exited ${this.child.exitCode ?? this.child.signalCode} before archivedThrough ≥ ${new Date(ms).toISOString()}: ${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`archivedThrough did not reach ${new Date(ms).toISOString()} in ${timeoutMs} ms (at ${new Date(this.archivedThrough).toISOString()}): ${this.tail()}`);
      await sleep(20);
    }
  }

  /** Stops it as the daemon does (SIGINT: it ships what it holds and exits 0). */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGINT');
    const code = await this.exited;
    if (code !== 0) throw new Error(`redis replicate exited ${code} on SIGINT: ${this.tail()}`);
  }

  async kill9(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }

  tail(): string {
    const events = this.events.slice(-8).map((e) => JSON.stringify(e)).join('\n');
    return `\nlast events:\n${events}\noutput:\n${this.output.slice(-3000)}`;
  }
}
