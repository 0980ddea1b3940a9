/**
 * `lifeboat quickstart`: the main job, end to end, with the commands a user would
 * type. Every Lifeboat step runs the real CLI as a child process (init, sqlite
 * replicate, sqlite restore, snapshots) and the steps are reported as the commands
 * themselves, so the output doubles as a tutorial. Only the sample application and
 * the accident are the quickstart's own.
 *
 * Safe to run twice: the directory, repository and password are reused; the sample
 * database and the restored copy are the quickstart's own files and are made afresh.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { LifeboatError } from '../../errors.js';
import { ACCIDENT_CONCEPT, GRAPH_YAML, SampleGraph } from './sample-graph.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'lifeboat.js');

export interface QuickstartOptions {
  dir: string;
  /** How long the sample application writes before the accident. */
  writeMs: number;
  /** Transactions a second the sample application commits. */
  rate: number;
  /** Each step as it happens: a command being run, or what was seen. */
  onStep: (step: Step) => void;
}

export type Step = { kind: 'run'; command: string } | { kind: 'note'; text: string };

export interface QuickstartReport {
  dir: string;
  repository: string;
  database: string;
  restored: string;
  committed: number;
  /** The DELETE, and the transaction the history says it was (the restore stops just before it). */
  accident: { at: string; nodes: number; edges: number; txn: number; generation: string; why: string };
  restoredTo: string;
  /** Deleted memories (and their edges) back in the restored copy. */
  recovered: { nodes: number; edges: number };
  /** Deleted memories not back because they were written inside the data-loss window. */
  inWindow: number;
  lostTransactions: number;
  /** Data-loss window: from the oldest transaction committed before the accident but missing from the restore, to the accident. */
  rpoSeconds: number;
  /** Restore-to-verified time of the restore command. */
  rtoSeconds: number;
  integrity: string;
  foreignKeyViolations: number;
  durationSeconds: number;
}

export async function runQuickstart(opts: QuickstartOptions): Promise<QuickstartReport> {
  const started = Date.now();
  const dir = path.resolve(opts.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const repository = path.join(dir, 'repo');
  const passwordFile = path.join(dir, 'password');
  const database = path.join(dir, 'memory.db');
  const restored = path.join(dir, 'restored.db');
  const rel = (p: string) => path.relative(process.cwd(), p) || '.';
  const global = ['--repo', rel(repository), '--password-file', rel(passwordFile)];
  const cli = new Cli(opts.onStep);

  if (!existsSync(passwordFile)) writeFileSync(passwordFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  if (!existsSync(path.join(repository, 'config'))) await cli.run(['init', ...global]);
  else opts.onStep({ kind: 'note', text: `using the repository made by an earlier run: ${rel(repository)}` });

  const app = new SampleGraph(database);
  opts.onStep({ kind: 'note', text: `sample memory graph: ${rel(database)} (nodes and edges with foreign keys, WAL mode)` });
  // The source as lifeboat.yaml describes it, graph included: the replicator reads the
  // graph from there and records its counts in each snapshot, for `lifeboat drill`.
  const configFile = path.join(dir, 'lifeboat.yaml');
  writeFileSync(configFile, quickstartConfig(repository, passwordFile, database), { mode: 0o600 });
  opts.onStep({ kind: 'note', text: `source "memory" with its graph declared: ${rel(configFile)}` });
  const replicator = cli.start([...global, '--config', rel(configFile), '--json', 'sqlite', 'replicate', rel(database), '--name', 'memory', '--interval', '1s']);
  try {
    await replicator.waitFor((e) => e.kind === 'snapshot', 30_000);
    opts.onStep({ kind: 'note', text: `writing ~${opts.rate} transactions/s for ${(opts.writeMs / 1000).toFixed(0)} s while replication runs` });
    await app.write(opts.writeMs, opts.rate);
    // The accident comes while the application writes, as a real one would: the writes
    // just before it may be seen by the replicator in the same poll as the DELETE, at the
    // same moment, so the restore finds the accident's transaction instead of a time.
    const accidentAt = Date.now();
    // The DELETE commits in a later millisecond than the moment restored to.
    while (Date.now() <= accidentAt) await new Promise((resolve) => setImmediate(resolve));
    const lost = app.forgetConcept(ACCIDENT_CONCEPT);
    opts.onStep({
      kind: 'note',
      text: `accident at ${new Date(accidentAt).toISOString()}: DELETE removed ${lost.ids.length} memories about "${ACCIDENT_CONCEPT}" (and ${lost.edges} edges by cascade)`,
    });
    // The application carries on after the accident, as it would.
    await app.write(1500, opts.rate);
    // Restore only once the replicator proves the repository holds everything up to the
    // accident (its status events): on a busy machine shipping can lag the writes, and a
    // restore before that would count transactions still on their way as lost.
    await replicator.waitFor(
      (e) => e.kind === 'status' && typeof e.archivedThrough === 'string' && Date.parse(e.archivedThrough) >= accidentAt,
      60_000,
      'the repository did not reach the moment of the accident',
    );

    const accidentTxn = await findAccident(cli, global, accidentAt, opts.onStep);
    for (const suffix of ['', '-wal', '-shm']) rmSync(restored + suffix, { force: true });
    const restoreStarted = Date.now();
    const out = await cli.run([...global, '--json', 'sqlite', 'restore', 'memory', '--before-txn', String(accidentTxn.seq), '--generation', accidentTxn.generation, '--output', rel(restored)]);
    const rtoSeconds = (Date.now() - restoreStarted) / 1000;
    const r = JSON.parse(out) as { restored_to: string };

    const check = inspect(restored, app, accidentAt, lost.ids);
    await replicator.stop();
    await cli.run([...global, 'snapshots']);
    app.close();
    return {
      dir,
      repository,
      database,
      restored,
      committed: app.ledger.length,
      accident: { at: new Date(accidentAt).toISOString(), nodes: lost.ids.length, edges: lost.edges, txn: accidentTxn.seq, generation: accidentTxn.generation, why: accidentTxn.why },
      restoredTo: r.restored_to,
      recovered: check.recovered,
      inWindow: check.inWindow,
      lostTransactions: check.lost,
      rpoSeconds: check.rpoSeconds,
      rtoSeconds,
      integrity: check.integrity,
      foreignKeyViolations: check.fkViolations,
      durationSeconds: (Date.now() - started) / 1000,
    };
  } finally {
    replicator.kill();
    if (app.db.open) app.close();
  }
}

interface HistoryTxn {
  seq: number;
  generation: string;
  time: string;
  objects: Array<{ name: string; delta: number }>;
}

/** Pages of `sqlite history` read looking for the accident before giving up (500 transactions each). */
const MAX_HISTORY_PAGES = 10;

/**
 * The accident's transaction, as an operator would find it: `sqlite history` around the
 * moment, and the transaction that removed memories from `nodes`. The sample
 * application only ever adds rows, so exactly one transaction near the moment removes
 * any; more than one, or none, is reported rather than guessed. The replicator's times
 * can be late (a poll, more on a loaded machine), so the history is read on from the
 * newest transaction listed until one removes rows.
 */
async function findAccident(cli: Cli, global: string[], accidentAt: number, onStep: (s: Step) => void): Promise<{ seq: number; generation: string; why: string }> {
  let around = accidentAt;
  let seen = 0;
  for (let page = 0; page < MAX_HISTORY_PAGES; page++) {
    const out = await cli.run([...global, '--json', 'sqlite', 'history', 'memory', '--around', new Date(around).toISOString(), '--limit', '500']);
    const h = JSON.parse(out) as { transactions: HistoryTxn[] };
    const removing = h.transactions.filter((t) => t.objects.some((o) => o.name === 'nodes' && o.delta < 0));
    seen += h.transactions.length;
    if (removing.length > 1) {
      throw new LifeboatError('FAILED', `${removing.length} transactions near the accident removed memories (${removing.map((t) => t.seq).join(', ')}); the quickstart expected one`, { hint: 'please report this with the output above' });
    }
    const t = removing[0];
    if (t) {
      const removed = (name: string) => -(t.objects.find((o) => o.name === name)?.delta ?? 0);
      const why = `the only transaction near the accident that removed rows: ${removed('nodes')} from nodes, ${removed('edges')} from edges (seen by the replicator at ${t.time})`;
      onStep({ kind: 'note', text: `the accident is transaction ${t.seq} of generation ${t.generation}: ${why}` });
      return { seq: t.seq, generation: t.generation, why };
    }
    const last = h.transactions.at(-1);
    if (!last || Date.parse(last.time) <= around) break;
    around = Date.parse(last.time);
  }
  throw new LifeboatError('FAILED', `none of the ${seen} transactions stored near the accident removed memories`, { hint: 'please report this with the output above' });
}

/** The quickstart's lifeboat.yaml (rewritten each run, as the database is): its repository and the sample database with its graph. */
function quickstartConfig(repository: string, passwordFile: string, database: string): string {
  return [
    '# Written by `lifeboat quickstart` (and again by each run). The sample database as a source,',
    '# with the graph it holds declared: backups record its counts, `lifeboat drill` checks them.',
    'repositories:',
    `  quickstart: { stores: [${JSON.stringify(repository)}], password_file: ${JSON.stringify(passwordFile)} }`,
    'sources:',
    '  memory:',
    '    kind: sqlite',
    '    repository: quickstart',
    `    path: ${JSON.stringify(database)}`,
    GRAPH_YAML,
  ].join('\n');
}

/** What the restored copy holds, checked against the application's own ledger. */
function inspect(file: string, app: SampleGraph, accidentAt: number, deleted: number[]) {
  // Read-write so that closing it removes the -wal and -shm files a reader creates.
  const db = new Database(file, { fileMustExist: true });
  try {
    const integrity = (db.pragma('integrity_check', { simple: true }) as string) ?? 'missing';
    const fkViolations = (db.pragma('foreign_key_check') as unknown[]).length;
    const present = new Set((db.prepare("SELECT id FROM nodes WHERE kind = 'memory'").all() as Array<{ id: number }>).map((r) => r.id));
    const back = deleted.filter((id) => present.has(id));
    const edges = (db.prepare('SELECT count(*) AS n FROM edges WHERE src IN (SELECT value FROM json_each(?))').get(JSON.stringify(back)) as { n: number }).n;
    const missing = app.ledger.filter((c) => c.time < accidentAt && !present.has(c.id));
    const firstMissing = missing[0];
    return {
      integrity,
      fkViolations,
      recovered: { nodes: back.length, edges },
      inWindow: deleted.length - back.length,
      lost: missing.length,
      rpoSeconds: firstMissing ? (accidentAt - firstMissing.time) / 1000 : 0,
    };
  } finally {
    db.close();
  }
}

interface Event {
  kind: string;
  [k: string]: unknown;
}

/** Runs the lifeboat CLI as a user would, reporting each command line. */
class Cli {
  constructor(private readonly onStep: (s: Step) => void) {}

  private spawn(args: string[]): ChildProcess {
    this.onStep({ kind: 'run', command: `lifeboat ${args.join(' ')}` });
    return spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Runs to completion; resolves to stdout, fails with the command's own error line. */
  run(args: string[]): Promise<string> {
    const child = this.spawn(args);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => {
        if (code === 0) {
          if (!args.includes('--json') && stdout.trim()) this.onStep({ kind: 'note', text: stdout.trimEnd() });
          resolve(stdout);
        } else reject(commandFailed(args, code, stderr));
      });
    });
  }

  /** Starts a long-running command whose --json events can be awaited. */
  start(args: string[]): Running {
    return new Running(this.spawn(args), args);
  }
}

class Running {
  private readonly events: Event[] = [];
  private readonly waiters: Array<() => void> = [];
  private stderr = '';
  private exited: Promise<number | null>;

  constructor(
    private readonly child: ChildProcess,
    private readonly args: string[],
  ) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as Event);
      } catch {
        return; // the final summary spans several lines; events are one per line
      }
      for (const w of this.waiters.splice(0)) w();
    });
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.on('close', (code) => {
      resolve(code);
      for (const w of this.waiters.splice(0)) w();
    }));
  }

  async waitFor(match: (e: Event) => boolean, timeoutMs: number, what = 'did not get going'): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      if (this.child.exitCode !== null) throw commandFailed(this.args, this.child.exitCode, this.stderr);
      if (Date.now() > deadline) throw new LifeboatError('FAILED', `lifeboat ${this.args.join(' ')}: ${what} in ${timeoutMs / 1000} s`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  /** SIGINT, as Ctrl-C would: the replicator ships what is left and exits. */
  async stop(): Promise<void> {
    this.child.kill('SIGINT');
    const code = await this.exited;
    if (code !== 0) throw commandFailed(this.args, code, this.stderr);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

function commandFailed(args: string[], code: number | null, stderr: string): LifeboatError {
  const line = stderr.split('\n').find((l) => l.startsWith('lifeboat: ')) ?? stderr.trim().split('\n').pop() ?? '';
  return new LifeboatError('FAILED', `lifeboat ${args.join(' ')} exited ${code ?? 'on a signal'}: ${line.replace(/^lifeboat: /, '')}`, {
    hint: 'the quickstart runs the same commands; run that one by hand to see its whole output',
  });
}

