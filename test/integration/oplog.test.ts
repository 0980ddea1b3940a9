/**
 * Operation-log shipping through the real CLI against real files: a writer appending
 * JSON lines with timestamps while `lifeboat oplog replicate` runs; rotation and
 * truncation while shipping; kill -9 of the replicator and a restart; restores cut at a
 * moment compared with the records whose time is at or before it; a partial last line
 * never shipped until it is finished; a replay command that rebuilds state; bad input.
 * Tests wait for what the replicator proves (archivedThrough), never for guessed times.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, openSync, readFileSync, renameSync, symlinkSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, cleanupTmp, expectError, initRepo, runCli, tmpdir } from '../helpers.js';

const ENV = { LIFEBOAT_PASSWORD: 'pw' };
type Event = Record<string, unknown>;
interface Rec {
  ts: string;
  seq: number;
  v: number;
}

const running: ChildProcess[] = [];
afterAll(() => {
  for (const c of running) if (c.exitCode === null) c.kill('SIGKILL');
  cleanupTmp();
});

async function cli(args: string[]): Promise<string> {
  const r = await runCli(args, ENV);
  if (r.code !== 0) throw new Error(`lifeboat ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return r.stdout;
}

async function newRepo(): Promise<{ dir: string; repo: string; log: string }> {
  const dir = tmpdir('lb-oplog-');
  const repo = path.join(dir, 'repo');
  await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
  return { dir, repo, log: path.join(dir, 'ops.jsonl') };
}

/** A running `lifeboat oplog replicate --json`, whose events can be awaited. */
class Replicator {
  readonly events: Event[] = [];
  readonly child: ChildProcess;
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(repo: string, file: string, extra: string[] = ['--time-field', 'ts']) {
    this.child = spawn(process.execPath, [CLI, '-r', repo, '--json', 'oplog', 'replicate', file, '--name', 'ops', '--interval', '100ms', ...extra], {
      env: { ...process.env, ...ENV },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.push(this.child);
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      if (l.startsWith('{"time"')) this.events.push(JSON.parse(l) as Event);
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('close', resolve));
  }

  async until(match: (e: Event) => boolean, what: string, timeoutMs = 60_000): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      if (this.child.exitCode !== null) throw new Error(`replicator exited ${this.child.exitCode} before ${what}: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`no ${what} in ${timeoutMs} ms: ${this.stderr}`);
      await sleep(20);
    }
  }

  /** Waits until everything written up to `ms` is proven stored. */
  archived(ms = Date.now()): Promise<Event> {
    return this.until((e) => e.kind === 'status' && e.healthy === true && typeof e.archivedThrough === 'string' && Date.parse(e.archivedThrough) >= ms, `archivedThrough ≥ ${new Date(ms).toISOString()}`);
  }

  async stop(): Promise<void> {
    this.child.kill('SIGINT');
    const code = await this.exited;
    if (code !== 0) throw new Error(`replicator exited ${code}: ${this.stderr}`);
  }
}

/** Appends records (ts = now, consecutive seq) to the journal. */
class Writer {
  seq = 0;
  readonly written: Rec[] = [];
  constructor(public file: string) {}
  write(n = 1): Rec[] {
    const out: Rec[] = [];
    for (let i = 0; i < n; i++) {
      const r = { ts: new Date().toISOString(), seq: ++this.seq, v: this.seq % 7 };
      out.push(r);
      appendFileSync(this.file, `${JSON.stringify(r)}\n`);
    }
    this.written.push(...out);
    return out;
  }
  /** Writes every `everyMs` until stopped. */
  keepWriting(everyMs: number): () => void {
    const t = setInterval(() => this.write(3), everyMs);
    return () => clearInterval(t);
  }
}

function records(file: string): Rec[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Rec);
}

async function restore(repo: string, out: string, ...extra: string[]): Promise<Rec[]> {
  await cli(['-r', repo, 'oplog', 'restore', 'ops', '-o', out, ...extra]);
  return records(out);
}

const seqs = (rs: Rec[]) => rs.map((r) => r.seq);
const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('oplog replicate and restore', () => {
  it('ships while a writer appends, and restores exactly the records whose time is at or before a moment', async () => {
    const { dir, repo, log } = await newRepo();
    const w = new Writer(log);
    w.write(5);
    const rep = new Replicator(repo, log);
    const stop = w.keepWriting(3);
    const moments: number[] = [];
    for (let i = 0; i < 5; i++) {
      await rep.archived();
      moments.push(Date.now());
      await sleep(50 + i * 30);
    }
    stop();
    await rep.archived();
    await rep.stop();
    // A moment between records, and moments exactly at a record's time.
    const exact = [w.written[10], w.written[Math.floor(w.written.length / 2)]].map((r) => Date.parse((r as Rec).ts));
    for (const [i, t] of [...moments, ...exact].entries()) {
      const got = await restore(repo, path.join(dir, `at-${i}.jsonl`), '--time', new Date(t).toISOString());
      expect(got).toEqual(w.written.filter((r) => Date.parse(r.ts) <= t));
    }
    const all = await restore(repo, path.join(dir, 'all.jsonl'));
    expect(all).toEqual(w.written);
    expect(readFileSync(path.join(dir, 'all.jsonl'))).toEqual(readFileSync(log));
  });

  it('never ships a partial last line until it is finished', async () => {
    const { dir, repo, log } = await newRepo();
    const w = new Writer(log);
    w.write(3);
    appendFileSync(log, '{"ts":"2026-01-01T00:00:00.000Z","seq":4,');
    const rep = new Replicator(repo, log);
    await rep.archived();
    expect(seqs(await restore(repo, path.join(dir, 'a.jsonl')))).toEqual([1, 2, 3]);
    appendFileSync(log, '"v":9}\n');
    await rep.archived();
    await rep.stop();
    const got = await restore(repo, path.join(dir, 'b.jsonl'));
    expect(seqs(got)).toEqual([1, 2, 3, 4]);
    expect(readFileSync(path.join(dir, 'b.jsonl'))).toEqual(readFileSync(log));
  });

  it('follows a rotation (the old file read to its end through its descriptor) and a truncation: nothing twice, nothing skipped', async () => {
    const { dir, repo, log } = await newRepo();
    const w = new Writer(log);
    w.write(20);
    const rep = new Replicator(repo, log);
    await rep.archived();
    // Rotation: the file is renamed; the writer still appends to the old one through its own descriptor for a moment.
    const oldFd = openSync(log, 'a');
    renameSync(log, `${log}.1`);
    for (let i = 0; i < 5; i++) {
      const r = { ts: new Date().toISOString(), seq: ++w.seq, v: 1 };
      w.written.push(r);
      writeSync(oldFd, `${JSON.stringify(r)}\n`);
    }
    closeSync(oldFd);
    w.write(10); // creates the new file
    await rep.until((e) => e.kind === 'generation' && e.reason === 'rotated', 'the rotated generation');
    await rep.archived();
    // Truncation: same inode, shorter than shipped.
    truncateSync(log, 0);
    w.write(4);
    await rep.until((e) => e.kind === 'generation' && e.reason === 'truncated', 'the truncated generation');
    await rep.archived();
    await rep.stop();
    // Not a restored copy: the replaced history is reported as a loss (the daemon counts it as a gap), not a mere warning.
    expect(rep.events.filter((e) => e.kind === 'loss' && /truncated/.test(String(e.message)))).toHaveLength(1);
    const got = await restore(repo, path.join(dir, 'all.jsonl'));
    expect(seqs(got)).toEqual(oneTo(w.seq));
    // A moment inside the second generation: everything of the first, part of the second.
    const mid = w.written[28] as Rec;
    const cut = await restore(repo, path.join(dir, 'mid.jsonl'), '--time', mid.ts);
    expect(cut).toEqual(w.written.filter((r) => Date.parse(r.ts) <= Date.parse(mid.ts)));
  });

  it('after kill -9 while the writer goes on, a restarted replicator continues: no record duplicated or lost', async () => {
    const { dir, repo, log } = await newRepo();
    const w = new Writer(log);
    w.write(5);
    const first = new Replicator(repo, log);
    const stop = w.keepWriting(2);
    await first.archived();
    await first.until((e) => e.kind === 'ship', 'a ship');
    await sleep(150);
    first.child.kill('SIGKILL');
    await first.exited;
    const afterKill = seqs(await restore(repo, path.join(dir, 'after-kill.jsonl')));
    expect(afterKill).toEqual(oneTo(afterKill.length));
    const second = new Replicator(repo, log);
    await second.until((e) => e.kind === 'generation', 'a generation');
    expect(second.events.find((e) => e.kind === 'generation')?.reason).toBe('resumed');
    await second.archived();
    stop();
    await second.archived();
    await second.stop();
    const got = await restore(repo, path.join(dir, 'all.jsonl'));
    expect(seqs(got)).toEqual(oneTo(w.seq));
    expect(got.length).toBeGreaterThan(afterKill.length);
  });

  it('a backup beside a running replicator (the daemon may run both) ships nothing twice: the restore follows one chain', async () => {
    const { dir, repo, log } = await newRepo();
    const w = new Writer(log);
    w.write(5);
    const rep = new Replicator(repo, log);
    const stop = w.keepWriting(2);
    for (let i = 0; i < 3; i++) {
      const b = await runCli(['-r', repo, 'oplog', 'backup', log, '--name', 'ops', '--time-field', 'ts'], ENV);
      expect(b.code, b.stderr).toBe(0);
    }
    stop();
    await rep.archived();
    await rep.stop();
    expect(seqs(await restore(repo, path.join(dir, 'all.jsonl')))).toEqual(oneTo(w.seq));
  });

  it('a restored journal put back in place continues its history: each record once; a restore before the put-back follows the old file', async () => {
    const { dir, repo, log } = await newRepo();
    const w = new Writer(log);
    w.write(10);
    const rep = new Replicator(repo, log);
    await rep.archived();
    // The application's accident came after the 6th record: restore to it and put the copy back (mv over the journal).
    const t6 = Date.parse((w.written[5] as Rec).ts);
    const old = [...w.written];
    const copy = path.join(dir, 'copy.jsonl');
    const upTo = await restore(repo, copy, '--time', new Date(t6).toISOString());
    expect(upTo).toEqual(old.filter((r) => Date.parse(r.ts) <= t6));
    renameSync(copy, log);
    await sleep(2); // the new records are after the old ones (ms timestamps)
    const added = w.write(3);
    await rep.until((e) => e.kind === 'restored-copy', 'the restored copy to be recognised');
    await rep.archived();
    await rep.stop();
    expect(rep.events.some((e) => e.kind === 'warning' || e.kind === 'loss')).toBe(false);
    const latest = path.join(dir, 'latest.jsonl');
    expect(await restore(repo, latest)).toEqual([...upTo, ...added]);
    expect(readFileSync(latest)).toEqual(readFileSync(log));
    // Before the put-back the journal held all ten old records.
    expect(await restore(repo, path.join(dir, 'before.jsonl'), '--time', (old[9] as Rec).ts)).toEqual(old);

    // Again with no replicator running: the whole history restored, copied back, one record more, one backup pass.
    const copy2 = path.join(dir, 'copy2.jsonl');
    await restore(repo, copy2);
    renameSync(copy2, log);
    const one = w.write(1);
    const b = await runCli(['-r', repo, 'oplog', 'backup', log, '--name', 'ops', '--time-field', 'ts'], ENV);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toBe('');
    expect(await restore(repo, path.join(dir, 'latest2.jsonl'))).toEqual([...upTo, ...added, ...one]);
  });

  it('a copy written in place ships nothing until it is whole, then continues; a file that only begins like a restored copy is new history', async () => {
    const { dir, repo, log } = await newRepo();
    const w = new Writer(log);
    w.write(8);
    const rep = new Replicator(repo, log);
    await rep.archived();
    const copy = path.join(dir, 'copy.jsonl');
    await restore(repo, copy);
    const bytes = readFileSync(copy);
    // cp over the journal: the same inode truncated, then filled; here it stops half-way through a record for a while.
    const seen = rep.events.length;
    truncateSync(log, 0);
    appendFileSync(log, bytes.subarray(0, Math.floor(bytes.length / 2) + 3));
    await rep.archived(); // all it holds is stored history: proven, and nothing shipped
    expect(rep.events.slice(seen).filter((e) => e.kind === 'ship')).toEqual([]);
    appendFileSync(log, bytes.subarray(Math.floor(bytes.length / 2) + 3));
    const added = w.write(2);
    await rep.until((e) => e.kind === 'restored-copy', 'the restored copy to be recognised');
    await rep.archived();
    // Rotation to a file that begins with the same records and then differs: not a copy, nothing of either file lost.
    const before = records(log);
    renameSync(log, `${log}.1`);
    const divergent = `${bytes.subarray(0, bytes.indexOf(0x0a) + 1).toString()}${JSON.stringify({ ts: new Date().toISOString(), seq: 100, v: 0 })}\n`;
    writeFileSync(log, divergent);
    await rep.until((e) => e.kind === 'generation' && e.reason === 'rotated', 'the rotated generation');
    await rep.archived();
    await rep.stop();
    expect(rep.events.filter((e) => e.kind === 'restored-copy')).toHaveLength(1);
    const got = await restore(repo, path.join(dir, 'all.jsonl'));
    expect(seqs(got)).toEqual([...seqs(before), 1, 100]);
    expect(seqs(before)).toEqual([...oneTo(8), ...seqs(added)]);
  });

  it('pipes the records into a replay command (argv, no shell) that rebuilds state, and writes to stdout with --output -', async () => {
    const { dir, repo, log } = await newRepo();
    const w = new Writer(log);
    w.write(40);
    await cli(['-r', repo, 'oplog', 'backup', log, '--name', 'ops', '--time-field', 'ts']);
    const script = path.join(dir, 'sum.mjs');
    writeFileSync(
      script,
      [
        "import { createInterface } from 'node:readline';",
        "import { writeFileSync } from 'node:fs';",
        'let sum = 0, n = 0;',
        "for await (const line of createInterface({ input: process.stdin })) { if (line) { sum += JSON.parse(line).v; n++; } }",
        'writeFileSync(process.argv[2], JSON.stringify({ sum, n }));',
      ].join('\n'),
    );
    const state = path.join(dir, 'state.json');
    const upTo = w.written[24] as Rec;
    const r = await runCli(['-r', repo, '--json', 'oplog', 'restore', 'ops', '--time', upTo.ts, '--replay-command', `${process.execPath} ${script} ${state}`], ENV);
    expect(r.code, r.stderr).toBe(0);
    const want = w.written.filter((x) => Date.parse(x.ts) <= Date.parse(upTo.ts));
    expect(JSON.parse(readFileSync(state, 'utf8'))).toEqual({ sum: want.reduce((a, x) => a + x.v, 0), n: want.length });
    expect(JSON.parse(r.stdout)).toMatchObject({ records: want.length, replay_exit: 0 });
    // A failing replay command fails the restore with its status, and leaves no output file.
    const failing = await runCli(['-r', repo, 'oplog', 'restore', 'ops', '-o', path.join(dir, 'no.jsonl'), '--replay-command', `${process.execPath} -e process.exit(3)`], ENV);
    expectError(failing, 1, /exited with 3/);
    expect(() => readFileSync(path.join(dir, 'no.jsonl'))).toThrow();
    const out = await runCli(['-r', repo, 'oplog', 'restore', 'ops', '-o', '-'], ENV);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toBe(readFileSync(log, 'utf8'));
  });

  it('ships u32be records, a partial record waiting', async () => {
    const { dir, repo } = await newRepo();
    const file = path.join(dir, 'ops.bin');
    const frame = (s: string) => {
      const b = Buffer.from(s);
      const h = Buffer.alloc(4);
      h.writeUInt32BE(b.length);
      return Buffer.concat([h, b]);
    };
    const whole = Buffer.concat([frame('{"ts":1764670000000,"op":"a"}'), frame('{"ts":1764670001000,"op":"b"}'), frame('x'.repeat(300))]);
    writeFileSync(file, Buffer.concat([whole, frame('partial').subarray(0, 6)]));
    await cli(['-r', repo, 'oplog', 'backup', file, '--name', 'ops', '--format', 'u32be', '--time-field', 'ts']);
    const out = path.join(dir, 'out.bin');
    await cli(['-r', repo, 'oplog', 'restore', 'ops', '-o', out]);
    expect(readFileSync(out)).toEqual(whole);
    await cli(['-r', repo, 'oplog', 'restore', 'ops', '-o', `${out}.2`, '--time', new Date(1764670000500).toISOString()]);
    expect(readFileSync(`${out}.2`)).toEqual(frame('{"ts":1764670000000,"op":"a"}'));
  });

  it('ships a record larger than a segment alone, and refuses one over 64 MiB naming its offset (exit 20)', async () => {
    const { dir, repo, log } = await newRepo();
    const big = `${JSON.stringify({ ts: new Date().toISOString(), seq: 2, v: 0, pad: 'x'.repeat(9 << 20) })}\n`;
    writeFileSync(log, `${JSON.stringify({ ts: new Date().toISOString(), seq: 1, v: 0 })}\n${big}{"seq":3`);
    const b = await runCli(['-r', repo, '--json', 'oplog', 'backup', log, '--name', 'ops', '--time-field', 'ts'], ENV);
    expect(b.code, b.stderr).toBe(0);
    const out = path.join(dir, 'big.jsonl');
    await cli(['-r', repo, 'oplog', 'restore', 'ops', '-o', out]);
    expect(seqs(records(out))).toEqual([1, 2]);
    const bin = path.join(dir, 'huge.bin');
    const h = Buffer.alloc(4);
    h.writeUInt32BE(70 << 20);
    writeFileSync(bin, Buffer.concat([Buffer.from([0, 0, 0, 2, 0x7b, 0x7d]), h, Buffer.from('only the start')]));
    expectError(await runCli(['-r', repo, 'oplog', 'backup', bin, '--name', 'huge', '--format', 'u32be'], ENV), 20, /a record of 73400324 bytes at offset 6 is larger than the 64 MiB limit/);
  });

  it('refuses bad input clearly: an unknown format, a target that exists, a symlinked journal; a record without its time field goes with the one before', async () => {
    const { dir, repo, log } = await newRepo();
    const w = new Writer(log);
    w.write(3);
    expectError(await runCli(['-r', repo, 'oplog', 'backup', log, '--format', 'csv'], ENV), 2, /--format must be one of jsonl, u32be/);
    const link = path.join(dir, 'link.jsonl');
    symlinkSync(log, link);
    expectError(await runCli(['-r', repo, 'oplog', 'backup', link, '--name', 'ops'], ENV), 2, /symlink/);

    appendFileSync(log, '{"seq":4,"v":1,"note":"no time"}\n');
    w.seq = 4;
    await sleep(5); // the next record's time is after the third's
    w.write(1);
    const b = await runCli(['-r', repo, 'oplog', 'backup', log, '--name', 'ops', '--time-field', 'ts'], ENV);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stderr).toMatch(/1 records without a readable "ts" field take the time of the record before them/);
    const third = w.written[2] as Rec;
    const cut = await restore(repo, path.join(dir, 'cut.jsonl'), '--time', third.ts);
    expect(cut.map((r) => r.seq)).toEqual([1, 2, 3, 4]);

    const target = path.join(dir, 'exists.jsonl');
    writeFileSync(target, 'keep me\n');
    expectError(await runCli(['-r', repo, 'oplog', 'restore', 'ops', '-o', target], ENV), 21, /already exists/);
    expect(readFileSync(target, 'utf8')).toBe('keep me\n');
    expectError(await runCli(['-r', repo, 'oplog', 'restore', 'nothing', '-o', path.join(dir, 'n.jsonl')], ENV), 15, /no records of oplog nothing/);
  });
});
