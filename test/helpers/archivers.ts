/**
 * The members' own archivers (`sqlite replicate`, `redis replicate`, `pg stream`) run as
 * a user runs them, for tests of consistency groups: a point is stored only once each
 * member's log reaches its position, so they run throughout such a test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI } from '../helpers.js';

export class Archivers {
  private readonly children: ChildProcess[] = [];

  /** Starts `lifeboat ARGS -r REPO` (the password from the tests' environment). */
  start(repo: string, args: string[]): void {
    this.children.push(spawn(process.execPath, [CLI, ...args, '-r', repo], { env: { ...process.env, LIFEBOAT_PASSWORD: 'test-password' }, stdio: 'ignore' }));
  }

  /** SIGTERM to each, and waits until each has closed. */
  async stop(): Promise<void> {
    for (const a of this.children) {
      a.kill('SIGTERM');
      if (a.exitCode === null && a.signalCode === null) await new Promise((res) => a.once('close', res));
    }
  }
}
