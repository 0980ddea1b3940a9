/**
 * The oplog kind for the conformance suite: a JSON-lines journal the driver appends to
 * (each record with its time in `ts`, as Engram's operation log carries one). A change
 * appends records (an operation log only grows; rotation and truncation have their own
 * tests in test/integration/oplog.test.ts). Its fingerprint is the records themselves.
 * Its log is `lifeboat oplog replicate`, started with the command the daemon's
 * supervisor runs for a source with `replicate: true`; a moment is taken once the
 * replicator's status proves everything written so far is stored.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, promises as fs, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { loadConfig, type SourceConfig } from '../../../src/config/config.js';
import { replicationCommand } from '../../../src/daemon/supervisor.js';
import { CLI, initRepo, runCli, tmpdir } from '../../helpers.js';
import { nextMoment, until, type KindDriver, type LogDriver, type Subject } from '../driver.js';

/** The journal's records, as a user replaying it would read them. */
function recordsOf(file: string): unknown[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as unknown);
}

/** A running replicator, as the daemon's supervisor starts it, with the status events it printed. */
class Replication {
  private latest = 0;
  private output = '';
  private readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      this.output = `${this.output}${line}\n`.slice(-4000);
      if (!line.startsWith('{"')) return;
      const e = JSON.parse(line) as { kind?: string; healthy?: boolean; archivedThrough?: string | null };
      if (e.kind === 'status' && e.healthy === true && typeof e.archivedThrough === 'string') this.latest = Math.max(this.latest, Date.parse(e.archivedThrough));
    });
    child.stderr?.on('data', (d: Buffer) => (this.output = `${this.output}${d.toString()}`.slice(-4000)));
    this.exited = new Promise((resolve) => child.on('close', resolve));
  }

  async archived(ms: number): Promise<void> {
    await until(() => `oplog replicate archivedThrough ≥ ${new Date(ms).toISOString()} (output: ${this.output})`, () => {
      if (this.child.exitCode !== null) throw new Error(`oplog replicate exited ${this.child.exitCode}: ${this.output}`);
      return this.latest >= ms;
    });
  }

  async stop(): Promise<void> {
    this.child.kill('SIGINT');
    const code = await this.exited;
    if (code !== 0) throw new Error(`oplog replicate exited ${code}: ${this.output}`);
  }
}

export const oplogDriver: KindDriver = {
  kind: 'oplog',
  hasLog: true,
  async setup(): Promise<Subject> {
    const dir = tmpdir('lb-conform-oplog-');
    const journal = path.join(dir, 'ops.jsonl');
    const repo = path.join(dir, 'repo');
    const pw = path.join(dir, 'password');
    writeFileSync(pw, 'conformance-oplog\n', { mode: 0o600 });
    let seq = 0;
    const append = (n: number, op: string) => {
      for (let i = 0; i < n; i++) appendFileSync(journal, `${JSON.stringify({ ts: new Date().toISOString(), seq: ++seq, op, value: seq * 3 })}\n`);
    };
    append(10, 'create_memory');
    const config = path.join(dir, 'lifeboat.yaml');
    writeFileSync(config, ['repositories:', '  main:', `    stores: [${repo}]`, `    password_file: ${pw}`, 'sources:', '  ops:', '    kind: oplog', `    path: ${journal}`, '    time_field: ts', '    interval: 200ms', ''].join('\n'));
    const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { LIFEBOAT_PASSWORD: undefined, ...env });
    await initRepo(repo, 'conformance-oplog');

    let replication: Replication | undefined;
    const log: LogDriver = {
      async start() {
        if (replication) return;
        const c = loadConfig(config);
        const source = c.sources.get('ops') as SourceConfig;
        const args = ['--json', '--config', config, '--repo', source.repository, ...replicationCommand(source, path.join(dir, 'state'))];
        replication = new Replication(spawn(process.execPath, [CLI, ...args], { env: { ...process.env, LIFEBOAT_CONFIG: config }, stdio: ['ignore', 'pipe', 'pipe'] }));
      },
      async stop() {
        await replication?.stop();
        replication = undefined;
      },
    };
    return {
      config,
      source: 'ops',
      cli,
      target: (label) => path.join(dir, `restored-${label}.jsonl`),
      async change(step) {
        append(3 + step, step % 2 ? 'update_strength' : 'activate');
      },
      fingerprint: async () => recordsOf(journal),
      restored: async (target) => recordsOf(target),
      async moment() {
        await replication?.archived(Date.now());
        return nextMoment();
      },
      restoresSnapshotIds: false,
      log,
      async close() {
        await replication?.stop().catch(() => {});
        await fs.rm(dir, { recursive: true, force: true });
      },
    };
  },
};
