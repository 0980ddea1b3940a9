/**
 * lifeboat recover [SOURCE] — guided recovery for the worst day (docs/recover.md):
 * choose the source (a list when none is named), see its recoverable window, pick a
 * moment (latest, a time, or a backup), see the plan (what goes where, how long the
 * last drill says it takes), confirm, watch it run, then read the checks' verdict and
 * the commands that switch over. `--yes` asks nothing (scripts); with `--json` it prints
 * JSON lines: `window`, `plan`, then `result` last.
 *
 * The restore itself is the kind's own restore command (the one the daemon and the
 * runbook run, with its checks: PostgreSQL starts, recovers, promotes and checks the
 * copy; SQLite runs integrity_check; Redis loads its RDB), run as a child of this CLI
 * against the same repository, so the guided path restores exactly what the manual does.
 */
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface, type Interface } from 'node:readline/promises';
import type { Command } from 'commander';
import { ERROR_TABLE, LifeboatError, type ErrorCode } from '../../errors.js';
import { takesTxn, parseMoment, planRecovery, prepareTarget, shellWord, swapIntoPlace, switchOver, type Moment, type RecoverPlan } from '../../engine/recover.js';
import { resolveWindowSource, sourceWindow, windowSources, type RecoverableWindow } from '../../engine/window.js';
import { findSourceKind } from '../../sources/registry.js';
import { forTerminal } from '../../util/terminal.js';
import { formatBytes } from '../../util/bytes.js';
import { findConfig, getPassword, withRepo, type GlobalOptions } from '../context.js';
import { collect } from './options.js';
import { groupWindow } from '../../engine/window.js';
import { windowLines, drillLine } from '../output/window.js';

interface RecoverFlags {
  time?: string;
  latest?: boolean;
  snapshot?: string;
  target: string[];
  overwrite?: boolean;
  yes?: boolean;
  group?: string;
  beforeTxn?: string;
  generation?: string;
}

const secs = (s: number) => (s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`);

export function register(program: Command): void {
  program
    .command('recover [source]')
    .description('guided recovery: choose a source, see its recoverable window, pick a moment, confirm, restore, check, and switch over')
    .option('--time <rfc3339>', 'recover to this moment (e.g. 2026-11-21T14:30:00Z)')
    .option('--latest', 'recover the newest data stored (the default with --yes)')
    .option('--snapshot <id>', 'recover exactly this backup (an id or unique prefix)')
    .option('--target <path>', 'where the restored data goes: a new path (or an empty directory); for a group MEMBER=DIR, repeated', collect, [])
    .option('--before-txn <n>', 'SQLite, Redis: restore to just before transaction N (`sqlite history` / `redis history` number them): undo it and everything after')
    .option('--generation <id>', 'SQLite, Redis: the generation --before-txn counts in (default: the newest)')
    .option('--group <name>', 'a consistency group (lifeboat.yaml): every member to one of its points')
    .option('--overwrite', 'the target may exist or be the live data: restore beside it, then swap (the old data is kept aside, not deleted)')
    .option('-y, --yes', 'ask nothing: needs SOURCE and --target (scripts; with --json, JSON lines)')
    .action(async (ref: string | undefined, f: RecoverFlags, cmd: Command) => {
      const g0 = cmd.optsWithGlobals<GlobalOptions>();
      // Without --repo, the repository lifeboat.yaml gives the source (a group's is found below).
      const fromConfig = ref !== undefined && !(g0.repo ?? process.env.LIFEBOAT_REPOSITORY) ? (await findConfig(g0))?.sources.get(ref)?.repository : undefined;
      const g: GlobalOptions = fromConfig !== undefined ? { ...g0, repo: fromConfig } : g0;
      const given = [f.time, f.latest ? 'latest' : undefined, f.snapshot, f.beforeTxn].filter((v) => v !== undefined);
      if (given.length > 1) throw new LifeboatError('USAGE', 'give one of --time, --latest, --snapshot and --before-txn', { hint: 'each names the moment to recover to' });
      if (f.beforeTxn !== undefined && !/^[1-9][0-9]{0,14}$/.test(f.beforeTxn)) throw new LifeboatError('USAGE', `--before-txn ${f.beforeTxn} is not a transaction number`, { hint: '`lifeboat sqlite history NAME --around TIME` (or `redis history`) lists them' });
      if (f.generation !== undefined && f.beforeTxn === undefined) throw new LifeboatError('USAGE', '--generation goes with --before-txn', { hint: 'it names the generation the transaction number counts in' });
      const interactive = !f.yes;
      if (interactive && (!process.stdin.isTTY || g.json)) {
        throw new LifeboatError('USAGE', 'recover asks its questions on a terminal', { hint: 'run it in a terminal, or pass --yes with SOURCE, --target and the moment (--time, --snapshot or --latest)' });
      }
      if (f.group !== undefined && ref !== undefined) throw new LifeboatError('USAGE', 'give SOURCE or --group NAME, not both', { hint: 'a group recovers all its members to one point' });
      if (!interactive && f.group === undefined && (ref === undefined || f.target.length !== 1)) {
        throw new LifeboatError('USAGE', '--yes needs SOURCE and one --target', { hint: 'e.g. lifeboat recover app --target /var/tmp/app.recovered --latest --yes' });
      }
      if (f.group === undefined && f.target.length > 1) throw new LifeboatError('USAGE', 'a source takes one --target', { hint: 'several targets (MEMBER=DIR) are for --group' });
      const out = new Out(g.json === true);
      const rl = interactive ? createInterface({ input: process.stdin, output: process.stdout, terminal: true }) : undefined;
      // The restore runs in a child that cannot prompt: a password typed here goes to it in its environment (never argv).
      if (rl && !g.passwordFile && !process.env.LIFEBOAT_PASSWORD_FILE && process.env.LIFEBOAT_PASSWORD === undefined && !g.keyCommand && !process.env.LIFEBOAT_KEY_COMMAND && !g.pkcs11Module && !process.env.LIFEBOAT_PKCS11_MODULE) {
        const named = (await findConfig(g))?.repositories.get(g.repo ?? process.env.LIFEBOAT_REPOSITORY ?? '');
        if (!named?.passwordFile && !named?.keyCommand) process.env.LIFEBOAT_PASSWORD = await getPassword(g);
      }
      try {
        if (f.group !== undefined) {
          await recoverGroup(g, f, f.group, out, rl);
          return;
        }
        const config = await findConfig(g);
        const { plan, window, kindName } = await withRepo(g, async (repo) => {
          let src: { kind: string; name: string };
          if (ref !== undefined) src = await resolveWindowSource(repo, ref);
          else src = await chooseSource(rl as Interface, await windowSources(repo));
          const w = await sourceWindow(repo, src.kind, src.name);
          out.event('window', w, () => windowLines(w));
          let moment: Moment;
          if (f.snapshot !== undefined) {
            moment = parseMoment(f.snapshot, w);
            if (moment.kind !== 'snapshot') throw new LifeboatError('USAGE', `--snapshot ${f.snapshot} is not a backup id`, { hint: '`lifeboat window NAME` lists the backups; --time takes a time' });
          }
          else if (f.beforeTxn !== undefined) moment = { kind: 'txn', before: Number(f.beforeTxn), ...(f.generation !== undefined ? { generation: f.generation } : {}) };
          else if (f.time !== undefined) moment = parseMoment(f.time, { snapshots: [] });
          else if (f.latest || !rl) moment = { kind: 'latest' };
          else {
            moment = await ask(rl, 'Recover to (latest, a time such as 2026-11-21T14:30:00Z, or a backup id) [latest]: ', (a) => parseMoment(a, w));
            if (moment.kind === 'time' && takesTxn(src.kind)) moment = await chooseTransaction(rl, g, src.kind, src.name, moment);
          }
          const live = liveOf(await repo.listSnapshots(), src, w);
          const target = f.target[0] ?? (await ask(rl as Interface, `Restore into (a new path) [${defaultTarget(src.name, src.kind)}]: `, (a) => a.trim() || defaultTarget(src.name, src.kind)));
          const configured = config?.sources.get(src.name);
          const planned = planRecovery({ window: w, moment, target, overwrite: f.overwrite === true, live, ...(configured && configured.kind === src.kind ? { source: configured } : {}) });
          return { plan: planned, window: w, kindName: src.kind };
        });
        out.event('plan', plan, () => planLines(plan, window));
        if (rl) {
          const yes = await ask(rl, 'Start the recovery? [y/N]: ', (a) => /^y(es)?$/i.test(a.trim()));
          if (!yes) {
            out.line('nothing was done');
            return;
          }
        }
        prepareTarget(plan);
        const started = Date.now();
        const result = await runRestore(g, plan, out);
        const elapsed = (Date.now() - started) / 1000;
        const moved = swapIntoPlace(plan);
        const checks = verification(result);
        const lines = switchOver(plan, result);
        out.event(
          'result',
          { ok: true, source: plan.source, kind: kindName, target: plan.target, restore_to: plan.restore_to, restored_to: restoredTo(result), elapsed_seconds: elapsed, expected_seconds: plan.expected_seconds, moved_aside: moved, checks, switch_over: lines, restore: result },
          () => [
            `recovered ${plan.kind}:${plan.source} into ${plan.target} in ${secs(elapsed)}${plan.expected_seconds !== null ? ` (the last drill took ${secs(plan.expected_seconds)})` : ''}`,
            ...(restoredTo(result) ? [`data as of ${restoredTo(result)}`] : []),
            'verification:',
            ...checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${forTerminal(c.detail)}`),
            ...moved.map((m) => `the previous content was moved aside to ${m}`),
            'to switch over:',
            ...lines.map((l) => `  ${l}`),
          ],
        );
      } finally {
        rl?.close();
      }
    });
}

/** Human lines or JSON lines: what a step shows. */
class Out {
  /** `silent`: no progress lines at all (a quick read such as `sqlite history`). */
  constructor(private readonly json: boolean, readonly silent = false) {}
  event(type: string, value: object, human: () => string[]): void {
    if (this.json) process.stdout.write(`${JSON.stringify({ type, ...value })}\n`);
    else console.log(human().join('\n'));
  }
  line(text: string): void {
    if (!this.json) console.log(text);
  }
  get isJson(): boolean {
    return this.json;
  }
}

/** Asks until `parse` accepts the answer; a refused answer shows its message and hint and asks again. */
async function ask<T>(rl: Interface, question: string, parse: (answer: string) => T): Promise<T> {
  for (let i = 0; ; i++) {
    const answer = await rl.question(question);
    try {
      return parse(answer);
    } catch (err) {
      if (!(err instanceof LifeboatError) || i >= 9) throw err;
      console.log(`  ${err.message}${err.hint ? ` (${err.hint})` : ''}`);
    }
  }
}

async function chooseSource(rl: Interface, all: Array<{ kind: string; name: string; newest: string }>): Promise<{ kind: string; name: string }> {
  if (all.length === 0) throw new LifeboatError('NOT_FOUND', 'the repository has no backups to recover from', { hint: '`lifeboat snapshots` lists what is there' });
  console.log('Sources in this repository:');
  all.forEach((s, i) => console.log(`  ${String(i + 1).padStart(2)}) ${forTerminal(`${s.kind}:${s.name}`).padEnd(30)} newest backup ${s.newest}`));
  return ask(rl, `Recover which source? [1-${all.length}]: `, (a) => {
    const n = Number(a.trim());
    const byName = all.find((s) => s.name === a.trim() || `${s.kind}:${s.name}` === a.trim());
    const hit = byName ?? (Number.isInteger(n) ? all[n - 1] : undefined);
    if (!hit) throw new LifeboatError('USAGE', `"${a.trim()}" is not one of the sources listed`, { hint: `a number from 1 to ${all.length}, or a name` });
    return hit;
  });
}

function defaultTarget(name: string, kind: string): string {
  const base = name.replace(/^\/+/, '').replace(/[^A-Za-z0-9._-]+/g, '_') || kind;
  return path.resolve(`${base}.recovered${kind === 'sqlite' && !/\.(db|sqlite3?)$/.test(base) ? '.db' : ''}`);
}

function liveOf(snaps: Awaited<ReturnType<import('../../repo/repository.js').Repository['listSnapshots']>>, src: { kind: string; name: string }, w: RecoverableWindow): string[] {
  const kind = findSourceKind(src.kind);
  const newest = w.snapshots.at(-1);
  const s = newest ? snaps.find((x) => x.id === newest.id) : undefined;
  return s && kind?.recover?.live ? kind.recover.live(s) : [];
}

function planLines(p: RecoverPlan, w: RecoverableWindow): string[] {
  const m = p.moment;
  const to =
    m.kind === 'latest' ? `the newest data stored (latest ${w.latest ?? '—'})`
    : m.kind === 'snapshot' ? `backup ${p.snapshot?.slice(0, 8) ?? ''} (as of ${p.restore_to ?? ''})`
    : m.kind === 'txn' ? `just before transaction ${m.before}${m.generation ? ` of generation ${m.generation}` : ''} (it and everything after it undone)`
    : p.restore_to ?? '';
  return [
    'Plan:',
    `  restore   ${p.kind}:${forTerminal(p.source)} as of ${to}`,
    `  into      ${forTerminal(p.target)}${p.staging ? ` (written to ${forTerminal(p.staging)} first; the current content is moved aside to ${forTerminal(p.aside ?? '')})` : ''}`,
    `  command   lifeboat ${p.command.map((a) => forTerminal(a)).join(' ')}`,
    `  expected  ${p.expected_seconds !== null ? `about ${secs(p.expected_seconds)} (last passed drill: ${drillLine(w.last_verified_drill)})` : 'unknown: never drilled'}`,
    ...p.warnings.map((x) => `  warning: ${forTerminal(x)}`),
  ];
}

/** The repository options of this run, for the child: where and how to open the same repository. */
function repoArgs(g: GlobalOptions): string[] {
  const pairs: Array<[string, string | undefined]> = [
    ['--config', g.config],
    ['--repo', g.repo],
    ['--password-file', g.passwordFile],
    ['--key-command', g.keyCommand],
    ['--pkcs11-module', g.pkcs11Module],
    ['--pkcs11-token', g.pkcs11Token],
    ['--pkcs11-key-label', g.pkcs11KeyLabel],
    ['--pkcs11-pin-file', g.pkcs11PinFile],
    ['--limit-download', g.limitDownload],
  ];
  return pairs.flatMap(([flag, v]) => (v === undefined ? [] : [flag, v]));
}

/**
 * Runs the plan's restore command as a child with --json and returns its result.
 * Progress: the child's own (`--progress json`: bytes, percent, ETA, docs/progress.md)
 * where the kind's restore reports it, else the time spent against the time the last
 * drill took; on a terminal one line redrawn, with --json a `progress` line per child
 * event (at most 4 a second) or every 2 s without any. The child's error becomes ours.
 */
function runRestore(g: GlobalOptions, plan: RecoverPlan, out: Out): Promise<Record<string, unknown>> {
  return runChild(g, plan.command, plan.expected_seconds, out, plan.staging !== null ? plan.target : undefined);
}

/** The fields of a child's progress line that recover passes on. */
interface ChildProgress {
  phase?: string;
  bytes?: number;
  total_bytes?: number | null;
  percent?: number | null;
  eta_seconds?: number | null;
}

async function runChild(g: GlobalOptions, command: readonly string[], expected: number | null, out: Out, untouched: string | false | undefined): Promise<Record<string, unknown>> {
  const cli = realpathSync(process.argv[1] ?? 'lifeboat');
  const child = spawn(process.execPath, [cli, ...repoArgs(g), '--json', '--progress', 'json', ...command], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  let stdout = '';
  let stderr = '';
  let latest: ChildProgress | undefined;
  let lastLine = 0;
  const started = Date.now();
  const tty = !out.isJson && process.stdout.isTTY;
  const tick = () => {
    if (out.silent) return;
    lastLine = Date.now();
    const s = (lastLine - started) / 1000;
    const p = latest;
    if (out.isJson) {
      const child = p ? { phase: p.phase ?? null, bytes: p.bytes ?? null, total_bytes: p.total_bytes ?? null, percent: p.percent ?? null, eta_seconds: p.eta_seconds ?? null } : {};
      process.stdout.write(`${JSON.stringify({ type: 'progress', elapsed_seconds: Math.round(s * 10) / 10, expected_seconds: expected, ...child })}\n`);
    } else if (tty) {
      const how =
        p?.percent != null
          ? ` ${p.percent.toFixed(0)}%${p.bytes !== undefined ? ` ${formatBytes(p.bytes)}${p.total_bytes ? ` of ${formatBytes(p.total_bytes)}` : ''}` : ''}${p.eta_seconds != null && p.phase !== 'done' ? ` ETA ${secs(p.eta_seconds)}` : ''}`
          : expected
            ? ` ~${Math.min(99, Math.floor((100 * s) / Math.max(expected, 0.1)))}% of the drill's time`
            : '';
      process.stdout.write(`\r  restoring and checking… ${secs(s)}${how}   `);
    }
  };
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    if (stdout.length < 16 << 20) stdout += d;
  });
  // Progress lines (they start with `{`) apart from the rest, which holds the error.
  createInterface({ input: child.stderr.setEncoding('utf8'), crlfDelay: Infinity }).on('line', (line) => {
    if (line.startsWith('{') && line.length < 4096) {
      try {
        const e = JSON.parse(line) as ChildProgress & { type?: string };
        if (e.type === 'progress') {
          latest = e;
          // The child already limits its lines to 4 a second, and always sends its last.
          if (out.isJson) tick();
          return;
        }
      } catch {
        // not a progress line: kept with the rest
      }
    }
    stderr = `${stderr}${line}\n`.slice(-64 * 1024);
  });
  if (!out.isJson && !out.silent) out.line('Recovering…');
  // Without a child's event for a while (a PostgreSQL copy recovering), the time still shows.
  const timer = setInterval(() => {
    if (!out.isJson || Date.now() - lastLine >= 2000) tick();
  }, out.isJson ? 500 : 250);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  }).finally(() => clearInterval(timer));
  if (tty && !out.silent) process.stdout.write('\n');
  if (code !== 0) {
    const m = /lifeboat: (.*)\n(?:\s+hint: (.*)\n)?/.exec(stderr);
    const codeName = (Object.keys(ERROR_TABLE) as ErrorCode[]).find((c) => ERROR_TABLE[c].exit === code) ?? 'FAILED';
    const hint = untouched ? `nothing was swapped: ${untouched} is as it was; ${m?.[2] ?? 'see the message'}` : (m?.[2] ?? 'see the message above');
    throw new LifeboatError(codeName, `the restore failed: ${m?.[1] ?? `exit ${String(code)}`}`, { hint });
  }
  try {
    return JSON.parse(stdout) as Record<string, unknown>;
  } catch {
    throw new LifeboatError('FAILED', 'the restore command printed no JSON result', { hint: stderr.trim().split('\n').at(-1) ?? 'run it by hand to see why' });
  }
}

/** The restore's own checks, from its JSON result, as name/ok/detail. */
function verification(r: Record<string, unknown>): Array<{ name: string; ok: boolean; detail: string }> {
  const out: Array<{ name: string; ok: boolean; detail: string }> = [];
  const started = r.started as { checks?: Array<{ name: string; ok: boolean; detail: string }>; rto_seconds?: number | null } | undefined;
  for (const c of started?.checks ?? []) out.push({ name: c.name, ok: c.ok, detail: c.detail });
  if (started?.rto_seconds != null) out.push({ name: 'rto', ok: true, detail: `restore, start, recovery and promotion took ${started.rto_seconds} s` });
  if (typeof r.integrity === 'string') out.push({ name: 'integrity_check', ok: r.integrity === 'ok', detail: `${r.integrity}; ${String(r.commits ?? 0)} transactions replayed on snapshot ${String(r.snapshot ?? '').slice(0, 8)}` });
  if (typeof r.foreign_key_violations === 'number') out.push({ name: 'foreign_key_check', ok: true, detail: `${r.foreign_key_violations} rows reported` });
  if (Array.isArray(r.checks)) for (const c of r.checks as Array<{ name?: string; check?: string; ok?: boolean; detail?: string; reply?: string }>) out.push({ name: c.name ?? c.check ?? 'check', ok: c.ok !== false, detail: c.detail ?? c.reply ?? '' });
  if (Array.isArray(r.errors)) out.push({ name: 'authenticated', ok: r.errors.length === 0, detail: `${String(r.files ?? 0)} files, every chunk authenticated against the repository's key${r.errors.length ? `; ${r.errors.length} items not restored` : ''}` });
  if (typeof r.records === 'number') out.push({ name: 'records', ok: true, detail: `${r.records} whole records written in order` });
  if (out.length === 0) out.push({ name: 'restore', ok: true, detail: 'the restore command finished without an error' });
  return out;
}

function restoredTo(r: Record<string, unknown>): string | null {
  const v = r.restored_to ?? r.restoredTo;
  return typeof v === 'string' ? v : null;
}

/**
 * A consistency group: every member back to one of its points with `group restore`
 * (which plans every member first and refuses a target that is not new or empty).
 */
async function recoverGroup(g: GlobalOptions, f: RecoverFlags, name: string, out: Out, rl: Interface | undefined): Promise<void> {
  const config = await findConfig(g);
  const group = config?.groups.get(name);
  if (!config || !group) {
    throw new LifeboatError(config ? 'NOT_FOUND' : 'USAGE', config ? `no group "${name}" in ${config.file}` : 'recovering a group needs lifeboat.yaml, where groups are declared', {
      hint: config ? `groups: ${[...config.groups.keys()].join(', ') || 'none'}` : 'give --config FILE (or LIFEBOAT_CONFIG), with a groups: section',
    });
  }
  if (f.overwrite) throw new LifeboatError('USAGE', '--overwrite is for one source; a group restores into new or empty directories', { hint: 'name new targets (--target MEMBER=DIR)' });
  const repoOpts: GlobalOptions = { ...g, repo: g.repo ?? process.env.LIFEBOAT_REPOSITORY ?? group.repository };
  const w = await withRepo(repoOpts, (repo) => groupWindow(repo, name));
  out.event('window', w, () => windowLines(w));
  if (w.snapshots.length === 0) throw new LifeboatError('NOT_FOUND', `group "${name}" has no stored points`, { hint: `take one with \`lifeboat group backup ${name}\`` });
  let moment: Moment;
  if (f.snapshot !== undefined) moment = parseMoment(f.snapshot, w);
  else if (f.time !== undefined) moment = parseMoment(f.time, { snapshots: [] });
  else if (f.latest || !rl) moment = { kind: 'latest' };
  else moment = await ask(rl, 'Recover to (latest, a time such as 2026-11-21T14:30:00Z, or a point id) [latest]: ', (a) => parseMoment(a, w));
  if (moment.kind === 'time' && w.earliest !== null && Date.parse(moment.time) < Date.parse(w.earliest)) {
    throw new LifeboatError('USAGE', `${moment.time} is before the group's first point`, { hint: `the earliest is ${w.earliest}` });
  }
  const targets = new Map<string, string>();
  for (const t of f.target) {
    const eq = t.indexOf('=');
    if (eq <= 0 || eq === t.length - 1) throw new LifeboatError('USAGE', `--target ${t}: expected MEMBER=DIR`, { hint: 'e.g. --target warm=/srv/restore/warm' });
    targets.set(t.slice(0, eq), path.resolve(t.slice(eq + 1)));
  }
  for (const m of group.members) {
    if (targets.has(m)) continue;
    if (!rl) throw new LifeboatError('USAGE', `member "${m}" of group ${name} has no --target`, { hint: `add --target ${m}=DIR (every member needs one)` });
    const dflt = path.resolve(`${name}-recovered`, m);
    targets.set(m, await ask(rl, `Restore member ${m} into (a new directory) [${dflt}]: `, (a) => path.resolve(a.trim() || dflt)));
  }
  const args = ['group', 'restore', name, ...(moment.kind === 'snapshot' ? ['--point', moment.id] : moment.kind === 'time' ? ['--time', moment.time] : ['--point', (w.snapshots.at(-1) as { id: string }).id])];
  for (const [m, dir] of targets) args.push('--target', `${m}=${dir}`);
  const expected = w.last_verified_drill?.rto_seconds ?? null;
  const plan = {
    group: name,
    moment,
    point: moment.kind === 'snapshot' ? moment.id : moment.kind === 'latest' ? (w.snapshots.at(-1)?.id ?? null) : null,
    targets: Object.fromEntries(targets),
    expected_seconds: expected,
    command: args,
    warnings: w.last_verified_drill ? [] : [`group ${name} was never drilled successfully: how long this takes is unproven`],
  };
  out.event('plan', plan, () => [
    'Plan:',
    `  restore   group ${forTerminal(name)} to ${moment.kind === 'time' ? `the newest point at or before ${moment.time}` : `point ${plan.point?.slice(0, 8) ?? ''}`}`,
    ...[...targets].map(([m, d]) => `  ${forTerminal(m).padEnd(9)} into ${forTerminal(d)}`),
    `  command   lifeboat ${args.map((a) => forTerminal(a)).join(' ')}`,
    `  expected  ${expected !== null ? `about ${secs(expected)} (last passed group drill: ${drillLine(w.last_verified_drill)})` : 'unknown: never drilled'}`,
    ...plan.warnings.map((x) => `  warning: ${forTerminal(x)}`),
  ]);
  if (rl && !(await ask(rl, 'Start the recovery? [y/N]: ', (a) => /^y(es)?$/i.test(a.trim())))) {
    out.line('nothing was done');
    return;
  }
  const started = Date.now();
  const result = await runChild(repoOpts, args, expected, out, false);
  const elapsed = (Date.now() - started) / 1000;
  const members = (result.members as Array<{ member: string; kind: string; target: string; detail: string }> | undefined) ?? [];
  const checks = members.map((m) => ({ name: m.member, ok: true, detail: m.detail }));
  const switchLines = members.flatMap((m) => [`# ${m.member} (${m.kind}):`, ...(findSourceKind(m.kind)?.recover?.switchOver(m.target, [], {}, shellWord) ?? [`# the restored data is in ${m.target}`])]);
  out.event(
    'result',
    { ok: true, group: name, point: result.point ?? null, restored_to: result.time ?? null, elapsed_seconds: elapsed, expected_seconds: expected, checks, switch_over: switchLines, restore: result },
    () => [
      `recovered group ${name} to point ${String(result.point ?? '').slice(0, 8)} (${String(result.time ?? '')}) in ${secs(elapsed)}`,
      'verification:',
      ...checks.map((c) => `  ok   ${forTerminal(c.name)}: ${forTerminal(c.detail)}`),
      'to switch over:',
      ...switchLines.map((l) => `  ${l}`),
    ],
  );
}

/**
 * SQLite: the transactions around the time typed (`sqlite history`), so that the
 * operator can undo exactly the accident instead of trusting the replicator's clock.
 * Enter keeps the time.
 */
async function chooseTransaction(rl: Interface, g: GlobalOptions, kind: string, name: string, at: Extract<Moment, { kind: 'time' }>): Promise<Moment> {
  let h: {
    generation: string;
    transactions: Array<{ seq: number; time: string; objects?: Array<{ name: string; delta?: number | null }>; commands?: Array<{ name: string; keys: string[]; key_count: number | null }> }>;
  };
  try {
    h = (await runChild(g, [kind, 'history', name, '--around', at.time, '--limit', '10'], null, new Out(true, true), undefined)) as typeof h;
  } catch (err) {
    console.log(`  (no transaction list: ${(err as Error).message})`);
    return at;
  }
  if (!Array.isArray(h.transactions) || h.transactions.length === 0) return at;
  console.log(`Transactions of generation ${h.generation} near ${at.time} (times: when the replicator saw them):`);
  for (const t of [...h.transactions].sort((a, b) => a.seq - b.seq)) {
    const objs = [
      ...(t.objects ?? []).map((o) => `${o.name}${o.delta ? ` (${o.delta > 0 ? '+' : ''}${o.delta})` : ''}`),
      ...(t.commands ?? []).map((c) => [c.name, ...c.keys, ...(c.key_count !== null && c.key_count > c.keys.length ? [`(+${c.key_count - c.keys.length} more keys)`] : [])].join(' ')),
    ].join(', ');
    console.log(`  ${String(t.seq).padStart(8)}  ${t.time}  ${forTerminal(objs)}`);
  }
  return ask(rl, `Undo a transaction and everything after it? Its number, or Enter to restore as of ${at.time}: `, (a) => {
    const v = a.trim();
    if (v === '') return at;
    if (!/^[1-9][0-9]{0,14}$/.test(v)) throw new LifeboatError('USAGE', `"${v}" is not a transaction number`, { hint: 'one of the numbers listed, or Enter' });
    return { kind: 'txn', before: Number(v), generation: h.generation } as Moment;
  });
}
