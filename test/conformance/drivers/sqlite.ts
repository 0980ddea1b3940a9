/**
 * The sqlite kind for the conformance suite: a database file written by the
 * application fixture (test/fixtures/sqlite-app.mjs, one row per transaction in WAL
 * mode) and changed in place (rows added, rewritten, deleted). Its fingerprint is the
 * rows themselves. Its log is `lifeboat sqlite replicate`, started with the command
 * the daemon's supervisor runs for a source with `replicate: true`; a moment is taken
 * once the replicator's status proves everything committed so far is stored (a
 * commit's time is when the replicator saw it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { loadConfig, type SourceConfig } from '../../../src/config/config.js';
import { replicationCommand } from '../../../src/daemon/supervisor.js';
import { CLI, initRepo, runCli, tmpdir } from '../../helpers.js';
import { runApp } from '../../sqlite-helpers.js';
import { nextMoment, until, type KindDriver, type LogDriver, type Subject } from '../driver.js';

/** Every row of the application's table, in id order: what a user of the database would compare. */
function rowsOf(file: string): unknown[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT id, at, marker, pad FROM app ORDER BY id').all();
  } finally {
    db.close();
  }
}

/** A running replicator, as the daemon's supervisor starts it, with the status events it printed. */
class Replication {
  private latest = 0;
  private output = '';
  private readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      this.output = `${this.output}${line}\n`.slice(-4000);
      // Events are one JSON object a line; a summary printed on the way out is not.
      if (!line.startsWith('{"')) return;
      const e = JSON.parse(line) as { kind?: string; healthy?: boolean; archivedThrough?: string | null };
      if (e.kind === 'status' && e.healthy === true && typeof e.archivedThrough === 'string') this.latest = Math.max(this.latest, Date.parse(e.archivedThrough));
    });
    child.stderr?.on('data', (d: Buffer) => (this.output = `${this.output}${d.toString()}`.slice(-4000)));
    this.exited = new Promise((resolve) => child.on('close', resolve));
  }

  /** Waits until the replicator proves everything committed up to `ms` is in the repository. */
  async archived(ms: number): Promise<void> {
    await until(() => `sqlite replicate archivedThrough ≥ ${new Date(ms).toISOString()} (output: ${this.output})`, () => {
      if (this.child.exitCode !== null) throw new Error(`sqlite replicate exited ${this.child.exitCode}: ${this.output}`);
      return this.latest >= ms;
    });
  }

  async stop(): Promise<void> {
    this.child.kill('SIGINT');
    const code = await this.exited;
    if (code !== 0) throw new Error(`sqlite replicate exited ${code}: ${this.output}`);
  }
}

export const sqliteDriver: KindDriver = {
  kind: 'sqlite',
  hasLog: true,
  async setup(): Promise<Subject> {
    const dir = tmpdir('lb-conform-sqlite-');
    const db = path.join(dir, 'app.db');
    const repo = path.join(dir, 'repo');
    const pw = path.join(dir, 'password');
    writeFileSync(pw, 'conformance-sqlite\n', { mode: 0o600 });
    await runApp(db, 20, { args: ['--tag', 'initial'] });
    const config = path.join(dir, 'lifeboat.yaml');
    writeFileSync(config, ['repositories:', '  main:', `    stores: [${repo}]`, `    password_file: ${pw}`, 'sources:', '  app:', '    kind: sqlite', `    path: ${db}`, '    interval: 200ms', ''].join('\n'));
    const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { LIFEBOAT_PASSWORD: undefined, ...env });
    await initRepo(repo, 'conformance-sqlite');

    let replication: Replication | undefined;
    const log: LogDriver = {
      async start() {
        if (replication) return;
        const c = loadConfig(config);
        const source = c.sources.get('app') as SourceConfig;
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
      source: 'app',
      cli,
      target: (label) => path.join(dir, `restored-${label}.db`),
      async change(step) {
        await runApp(db, 5, { args: ['--tag', `step${step}`] });
        const conn = new Database(db);
        try {
          conn.prepare('UPDATE app SET pad = ? WHERE id = (SELECT max(id) FROM app)').run(`rewritten in step ${step}`);
          conn.prepare('DELETE FROM app WHERE id = (SELECT min(id) FROM app)').run();
        } finally {
          conn.close();
        }
      },
      fingerprint: async () => rowsOf(db),
      restored: async (target) => rowsOf(target),
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
