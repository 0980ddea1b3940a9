/**
 * `lifeboat recover` end to end, with real components: for files, SQLite (replicated by
 * `sqlite replicate`) and PostgreSQL (a scratch cluster archiving into the repository)
 * `recover --yes --json` restores to the moment asked, its checks pass, and the restored
 * data is what was there at that moment, row by row; restoring over live data is refused
 * (exit 21) and, with --overwrite, done beside it and swapped, the old data kept aside;
 * and the interactive mode, driven through a pseudo-terminal (tmux), asks for the
 * source, the moment, the target and a confirmation, and recovers.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { RecoverableWindow } from '../../src/engine/window.js';
import { CLI, cleanupTmp, initRepo, runCli, tmpdir } from '../helpers.js';
import { archivedCluster, lifeboatAsPostgres, type ScratchCluster } from '../pg-cluster.js';
import { switchAndArchive } from '../pg-load.js';
import { ENV, Replicator } from '../sqlite-helpers.js';

type Line = { type: string } & Record<string, unknown>;
interface Result extends Line {
  ok: boolean;
  target: string;
  checks: Array<{ name: string; ok: boolean; detail: string }>;
  switch_over: string[];
  moved_aside: string[];
  restored_to: string | null;
  expected_seconds: number | null;
}

const lines = (stdout: string): Line[] => stdout.trim().split('\n').map((l) => JSON.parse(l) as Line);
const resultOf = (stdout: string): Result => {
  const all = lines(stdout);
  const last = all.at(-1) as Result;
  expect(last.type).toBe('result');
  return last;
};

afterAll(() => cleanupTmp());

/** A program on a pseudo-terminal (tmux): its screen, and keys typed into it. */
function terminal(session: string, command: string) {
  // The command tmux runs is the test's own: paths it created, no input from elsewhere. It stays
  // (sleep) so that the screen can be read after the program ended; close() kills the session.
  execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '200', '-y', '60', `${command}; sleep 300`]);
  const screen = () => spawnSync('tmux', ['capture-pane', '-p', '-J', '-S', '-300', '-t', session], { encoding: 'utf8' }).stdout;
  return {
    screen,
    async waitFor(re: RegExp): Promise<string> {
      const until = Date.now() + 60_000;
      for (;;) {
        const s = screen();
        if (re.test(s)) return s;
        if (Date.now() > until) throw new Error(`no ${re} on the terminal:\n${s}`);
        await sleep(50);
      }
    },
    type(text: string): void {
      execFileSync('tmux', ['send-keys', '-t', session, '-l', text]);
      execFileSync('tmux', ['send-keys', '-t', session, 'Enter']);
    },
    close(): void {
      spawnSync('tmux', ['kill-session', '-t', session]);
    },
  };
}

describe('files', () => {
  const dir = tmpdir('lb-recover-files-');
  const repo = path.join(dir, 'repo');
  const data = path.join(dir, 'data');
  const lb = (args: string[]) => runCli(['-r', repo, ...args], ENV);

  it('recovers the backup into a new path, refuses the live data, and with --overwrite swaps it in keeping the old aside', async () => {
    mkdirSync(data);
    writeFileSync(path.join(data, 'a.txt'), 'the original\n');
    writeFileSync(path.join(data, 'b.txt'), 'kept too\n');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    expect((await lb(['backup', '--name', 'docs', data])).code).toBe(0);
    const drill = await lb(['drill', '--source', 'docs']);
    expect(drill.code, drill.stderr).toBe(0);
    // The accident.
    writeFileSync(path.join(data, 'a.txt'), 'damaged\n');
    rmSync(path.join(data, 'b.txt'));

    const out = path.join(dir, 'out');
    const r = await lb(['--json', 'recover', 'docs', '--target', out, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    const events = lines(r.stdout);
    expect(events.map((e) => e.type).filter((t) => t !== 'progress')).toEqual(['window', 'plan', 'result']);
    // The restore's own progress comes through: bytes against the total, ending at 100 %.
    const progress = events.filter((e) => e.type === 'progress') as unknown as Array<{ phase: string | null; percent: number | null; bytes: number | null; total_bytes: number | null }>;
    expect(progress.at(-1)).toMatchObject({ phase: 'done', percent: 100, bytes: 22, total_bytes: 22 });
    expect((events[0] as unknown as RecoverableWindow).last_verified_drill?.ok).toBe(true);
    const res = resultOf(r.stdout);
    expect(res.ok).toBe(true);
    expect(res.expected_seconds).toBeGreaterThan(0);
    expect(res.checks).toEqual([expect.objectContaining({ name: 'authenticated', ok: true })]);
    expect(readFileSync(path.join(out, data, 'a.txt'), 'utf8')).toBe('the original\n');
    expect(readFileSync(path.join(out, data, 'b.txt'), 'utf8')).toBe('kept too\n');
    expect(res.switch_over.join('\n')).toContain(`rsync -a ${path.join(out, data)}/ ${data}/`);

    // Over the live data: refused with one line, a hint and exit 21; nothing changed.
    const refused = await lb(['recover', 'docs', '--target', data, '--yes']);
    expect(refused.code).toBe(21);
    expect(refused.stderr).toMatch(new RegExp(`^lifeboat: ${data} is the live data of files:docs .*nothing was written$`, 'm'));
    expect(refused.stderr).toMatch(/hint: .*--overwrite/);
    expect(readFileSync(path.join(data, 'a.txt'), 'utf8')).toBe('damaged\n');
    // A non-empty target that is not live data: refused the same way.
    const busy = await lb(['recover', 'docs', '--target', out, '--yes']);
    expect(busy.code).toBe(21);
    expect(busy.stderr).toMatch(/already exists and is not empty; nothing was written/);

    const swapped = await lb(['--json', 'recover', 'docs', '--target', data, '--overwrite', '--yes']);
    expect(swapped.code, swapped.stderr).toBe(0);
    const sw = resultOf(swapped.stdout);
    expect(readFileSync(path.join(data, 'a.txt'), 'utf8')).toBe('the original\n');
    expect(readFileSync(path.join(data, 'b.txt'), 'utf8')).toBe('kept too\n');
    expect(sw.moved_aside).toHaveLength(1);
    expect(readFileSync(path.join(sw.moved_aside[0] as string, 'a.txt'), 'utf8')).toBe('damaged\n');
    // Nothing of the staging path is left beside it.
    expect(readdirSync(dir).filter((f) => f.includes('.recover-'))).toEqual([]);
  });

  it('asks for the source, moment, target and confirmation on a terminal (tmux), then recovers', async () => {
    const target = path.join(dir, 'interactive');
    const done = path.join(dir, 'interactive.exit');
    const t = terminal(`lbrecover${process.pid}`, `cd ${dir} && LIFEBOAT_PASSWORD=pw ${process.execPath} ${CLI} -r ${repo} recover; echo $? > ${done}`);
    const { waitFor } = t;
    const type = (text: string) => t.type(text);
    try {
      const list = await waitFor(/Recover which source\? \[1-1\]: $/m);
      expect(list).toMatch(/ 1\) files:docs/);
      type('1');
      const window = await waitFor(/Recover to \(latest, a time .*\) \[latest\]: $/m);
      expect(window).toMatch(/files:docs\n\s+earliest\s+\S+Z\n\s+latest\s+\S+Z/);
      expect(window).toMatch(/last drill\s+passed .*RTO/);
      // An answer that is no moment is refused with the reason, and asked again.
      type('yesterday');
      await waitFor(/"yesterday" is not an RFC 3339 time[\s\S]*Recover to .*: $/m);
      type('latest');
      await waitFor(/Restore into \(a new path\) \[.*docs\.recovered\]: $/m);
      type(target);
      const plan = await waitFor(/Start the recovery\? \[y\/N\]: $/m);
      expect(plan).toMatch(/Plan:\n\s+restore\s+files:docs as of the newest data stored/);
      expect(plan).toMatch(/expected\s+about \S+ s \(last passed drill: passed/);
      type('y');
      const end = await waitFor(/to switch over:\n\s+# the restored files/);
      expect(end).toMatch(/verification:\n\s+ok\s+authenticated: 2 files/);
      const until = Date.now() + 30_000;
      while (!existsSync(done) && Date.now() < until) await sleep(50);
      expect(readFileSync(done, 'utf8').trim()).toBe('0');
      expect(readFileSync(path.join(target, data, 'a.txt'), 'utf8')).toBe('the original\n');
    } finally {
      t.close();
    }
  });
});

describe('SQLite', () => {
  it('recovers to a moment before the accident: every row back, integrity checked; the live file is refused', async () => {
    const dir = tmpdir('lb-recover-sqlite-');
    const repo = path.join(dir, 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    const file = path.join(dir, 'notes.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)');
    const rep = new Replicator(repo, file, ['--interval', '100ms'], 'notes');
    let before: string;
    try {
      await rep.waitFor('snapshot');
      const insert = db.prepare('INSERT INTO notes (body) VALUES (?)');
      for (let i = 1; i <= 30; i++) insert.run(`note ${i}`);
      // Shipped, and timed by the replicator before this moment; the accident comes after it.
      await rep.archived(Date.now());
      before = new Date().toISOString();
      db.exec('DELETE FROM notes WHERE id > 5');
      await rep.archived(Date.now());
    } finally {
      await rep.stop();
      db.close();
    }
    const out = path.join(dir, 'notes.recovered.db');
    const r = await runCli(['-r', repo, '--json', 'recover', 'notes', '--time', before, '--target', out, '--yes'], ENV);
    expect(r.code, r.stderr).toBe(0);
    const res = resultOf(r.stdout);
    expect(res.checks.find((c) => c.name === 'integrity_check')).toMatchObject({ ok: true });
    expect(Date.parse(res.restored_to as string)).toBeLessThanOrEqual(Date.parse(before));
    const copy = new Database(out, { readonly: true });
    expect(copy.prepare('SELECT body FROM notes ORDER BY id').all()).toEqual(Array.from({ length: 30 }, (_, i) => ({ body: `note ${i + 1}` })));
    copy.close();
    expect(res.switch_over).toContain(`mv ${out} ${file}`);
    // The newest data: the accident included (5 rows).
    const latest = path.join(dir, 'latest.db');
    expect((await runCli(['-r', repo, '--json', 'recover', 'notes', '--latest', '--target', latest, '--yes'], ENV)).code).toBe(0);
    const l = new Database(latest, { readonly: true });
    expect((l.prepare('SELECT count(*) AS n FROM notes').get() as { n: number }).n).toBe(5);
    l.close();

    // Exactly the accident undone: its transaction found with `sqlite history`, the restore stopping just before it.
    const hist = JSON.parse((await runCli(['-r', repo, '--json', 'sqlite', 'history', 'notes', '--around', before], ENV)).stdout) as { generation: string; transactions: Array<{ seq: number; objects: Array<{ name: string; delta: number | null }> }> };
    const accident = hist.transactions.find((x) => x.objects.some((o) => o.name === 'notes' && o.delta === -25));
    expect(accident, JSON.stringify(hist.transactions)).toBeDefined();
    const undone = path.join(dir, 'undone.db');
    const u = await runCli(['-r', repo, '--json', 'recover', 'notes', '--before-txn', String(accident?.seq), '--target', undone, '--yes'], ENV);
    expect(u.code, u.stderr).toBe(0);
    expect((lines(u.stdout).find((e) => e.type === 'plan') as unknown as { command: string[] }).command).toEqual(expect.arrayContaining(['--before-txn', String(accident?.seq)]));
    const un = new Database(undone, { readonly: true });
    expect((un.prepare('SELECT count(*) AS n FROM notes').get() as { n: number }).n).toBe(30);
    un.close();

    // On a terminal: a time typed for SQLite lists the transactions around it, and one can be undone by its number.
    const done = path.join(dir, 'tty.exit');
    const picked = path.join(dir, 'picked.db');
    const t = terminal(`lbrecover-sqlite${process.pid}`, `cd ${dir} && LIFEBOAT_PASSWORD=pw ${process.execPath} ${CLI} -r ${repo} recover notes --target ${picked}; echo $? > ${done}`);
    try {
      await t.waitFor(/Recover to .*\[latest\]: $/m);
      t.type(before);
      const list = await t.waitFor(/Undo a transaction and everything after it\? Its number, or Enter to restore as of .*: $/m);
      expect(list).toMatch(new RegExp(`^\\s+${accident?.seq}\\s+\\S+Z\\s+notes \\(-25\\)`, 'm'));
      t.type(String(accident?.seq));
      const plan = await t.waitFor(/Start the recovery\? \[y\/N\]: $/m);
      expect(plan).toMatch(new RegExp(`restore\\s+sqlite:notes as of just before transaction ${accident?.seq} of generation ${hist.generation}`));
      t.type('y');
      await t.waitFor(/to switch over:/);
      const until = Date.now() + 30_000;
      while (!existsSync(done) && Date.now() < until) await sleep(50);
      expect(readFileSync(done, 'utf8').trim()).toBe('0');
    } finally {
      t.close();
    }
    const pk = new Database(picked, { readonly: true });
    expect((pk.prepare('SELECT count(*) AS n FROM notes').get() as { n: number }).n).toBe(30);
    pk.close();

    const refused = await runCli(['-r', repo, 'recover', 'notes', '--time', before, '--target', file, '--yes'], ENV);
    expect(refused.code).toBe(21);
    expect(refused.stderr).toMatch(/is the live data of sqlite:notes/);
    // A moment before anything was stored: refused before anything runs, naming the earliest.
    const early = await runCli(['-r', repo, 'recover', 'notes', '--time', '2001-01-01T00:00:00Z', '--target', path.join(dir, 'early.db'), '--yes'], ENV);
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(/is before the earliest recoverable moment of notes\n\s+hint: the earliest is \S+Z/);
    expect(existsSync(path.join(dir, 'early.db'))).toBe(false);
  }, 120_000);
});

describe('PostgreSQL', () => {
  let setup: { base: string; repo: string; pw: string; cluster: ScratchCluster } | undefined;
  afterAll(async () => {
    await setup?.cluster.destroy();
    if (setup) rmSync(setup.base, { recursive: true, force: true });
  });

  it('recovers to a moment before the accident: the copy starts, recovers, passes its checks and holds every row', async () => {
    setup = await archivedCluster('lb-recover-pg-');
    const { base, repo, pw, cluster } = setup;
    const lb = (args: string[]) => lifeboatAsPostgres(['--repo', repo, '--password-file', pw, ...args]);
    await cluster.query('CREATE TABLE orders (id int PRIMARY KEY, item text)');
    await cluster.query("INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 100) g");
    const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
    expect(b.code, b.stderr).toBe(0);
    await cluster.query("INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(101, 150) g");
    await switchAndArchive(cluster); // these rows in a segment of their own (removed at the end)
    const before = new Date().toISOString();
    await cluster.query('DELETE FROM orders WHERE id > 10'); // the accident
    await switchAndArchive(cluster);
    const [{ t }] = (await cluster.query<{ t: Date }>('select now() as t')) as [{ t: Date }];

    const w = JSON.parse((await lb(['--json', 'window', 'main'])).stdout) as RecoverableWindow;
    expect(w.continuous).toBe(true);
    expect(w.coverage.map((c) => c.log)).toEqual(['wal-archive']);
    // The window ends at the accident's commit, read from the archived WAL: after `before`, not after the query that followed.
    expect(Date.parse(w.latest as string)).toBeGreaterThan(Date.parse(before));
    expect(Date.parse(w.latest as string)).toBeLessThanOrEqual(t.getTime() + 1);

    const target = path.join(base, 'recovered');
    const r = await lb(['--json', 'recover', 'main', '--time', before, '--target', target, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    const res = resultOf(r.stdout);
    expect(res.checks.filter((c) => ['start', 'select 1', 'databases'].includes(c.name)).map((c) => c.ok)).toEqual([true, true, true]);
    expect(res.checks.find((c) => c.name === 'rto')?.detail).toMatch(/took [\d.]+ s/);
    expect(res.switch_over.join('\n')).toMatch(new RegExp(`pg_ctl -D ${target} start`));
    // Start it as the switch-over says and read the rows.
    const port = Number(/port (\d+)/.exec(res.switch_over.join('\n'))?.[1]);
    const copy = cluster.copy(target, port);
    await copy.start(target);
    try {
      const rows = await copy.query<{ n: string }>('select count(*) as n from orders');
      expect(Number(rows[0]?.n)).toBe(150);
    } finally {
      await copy.stop(target);
    }

    // A WAL segment missing from the archive (the one holding rows 101-150): the window ends before it, and says why.
    const walDir = path.join(repo, 'logs', 'postgres.main', '00000001');
    const segs = readdirSync(walDir).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort();
    rmSync(path.join(walDir, segs.at(-2) as string));
    const cut = JSON.parse((await lb(['--json', 'window', 'main'])).stdout) as RecoverableWindow;
    expect(Date.parse(cut.latest as string)).toBeLessThan(Date.parse(before));
    expect(cut.gaps).toHaveLength(1);
    expect(cut.gaps[0]?.reason).toMatch(new RegExp(`WAL segment ${segs.at(-2)} is missing: recovery cannot replay past it`));
    expect(cut.gaps[0]?.to).toBe(w.latest);
  }, 300_000);
});

describe('a consistency group', () => {
  it('shows its points and members, and recovers every member to the point chosen', async () => {
    const dir = tmpdir('lb-recover-group-');
    const repo = path.join(dir, 'repo');
    for (const d of ['docs', 'more']) {
      mkdirSync(path.join(dir, d));
      writeFileSync(path.join(dir, d, 'f'), `${d} at the point\n`);
    }
    const cfg = path.join(dir, 'lifeboat.yaml');
    writeFileSync(cfg, ['repositories:', `  main: { stores: [${repo}] }`, 'sources:', '  docs: { kind: files, paths: [docs] }', '  more: { kind: files, paths: [more] }', 'groups:', '  pair: { members: [docs, more], max_hold: 30s }', ''].join('\n'));
    const lb = (args: string[]) => runCli(['--config', cfg, ...args], ENV);
    expect((await lb(['init', '-r', repo])).code).toBe(0);
    const b = await lb(['--json', 'group', 'backup', 'pair']);
    expect(b.code, b.stderr).toBe(0);
    const point = (JSON.parse(b.stdout) as { id: string }).id;
    for (const d of ['docs', 'more']) writeFileSync(path.join(dir, d, 'f'), 'after the accident\n');
    expect((await lb(['group', 'backup', 'pair'])).code).toBe(0);

    const w = JSON.parse((await lb(['--json', 'window', '--group', 'pair'])).stdout) as RecoverableWindow;
    expect(w.kind).toBe('group');
    expect(w.snapshots.map((s) => s.id)[0]).toBe(point);
    expect(w.snapshots).toHaveLength(2);
    expect(w.members?.map((m) => `${m.kind}:${m.name}`).sort()).toEqual(['files:docs', 'files:more']);

    // A member without a target: refused before anything runs.
    const missing = await lb(['recover', '--group', 'pair', '--snapshot', point, '--target', `docs=${dir}/r/docs`, '--yes']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/member "more" of group pair has no --target/);

    mkdirSync(path.join(dir, 'r'));
    const r = await lb(['--json', 'recover', '--group', 'pair', '--snapshot', point, '--target', `docs=${dir}/r/docs`, '--target', `more=${dir}/r/more`, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    const res = resultOf(r.stdout);
    expect(res).toMatchObject({ ok: true, point });
    expect(res.checks.map((c) => c.name).sort()).toEqual(['docs', 'more']);
    for (const d of ['docs', 'more']) {
      const found = execFileSync('find', [path.join(dir, 'r', d), '-name', 'f', '-type', 'f']).toString().trim();
      expect(readFileSync(found, 'utf8')).toBe(`${d} at the point\n`);
    }
  }, 120_000);
});

describe('an operation log', () => {
  it('covers every shipped record without a gap and recovers them in order', async () => {
    const dir = tmpdir('lb-recover-oplog-');
    const repo = path.join(dir, 'repo');
    const journal = path.join(dir, 'journal.jsonl');
    const lb = (args: string[]) => runCli(['-r', repo, ...args], ENV);
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    writeFileSync(journal, '{"op":1}\n{"op":2}\n');
    expect((await lb(['oplog', 'backup', journal, '--name', 'orders'])).code).toBe(0);
    writeFileSync(journal, '{"op":1}\n{"op":2}\n{"op":3}\n');
    expect((await lb(['oplog', 'backup', journal, '--name', 'orders'])).code).toBe(0);
    const w = JSON.parse((await lb(['--json', 'window', 'orders'])).stdout) as RecoverableWindow;
    expect(w).toMatchObject({ kind: 'oplog', continuous: true, gaps: [], earliest: w.snapshots[0]?.time });
    expect(w.coverage.map((c) => c.log)).toEqual(['oplog']);
    const out = path.join(dir, 'out.jsonl');
    const r = await lb(['--json', 'recover', 'orders', '--target', out, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(resultOf(r.stdout).checks).toEqual([expect.objectContaining({ name: 'records', detail: '3 whole records written in order' })]);
    expect(readFileSync(out, 'utf8')).toBe('{"op":1}\n{"op":2}\n{"op":3}\n');
  });
});
