/**
 * Helpers of the end-to-end safety tests (e2e/safety.test.ts, e2e/safety-restore.test.ts):
 * the CLI run or started to be killed, repository checks and listings, and byte-for-byte
 * comparison of a restore with its source.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { CLI, runCli, snapshotOf, snapshotsJson, tmpdir, type CliResult, type Meta } from './helpers.js';

export const MiB = 1024 * 1024;
export const PASSWORD = 'test-password';

/** Runs the CLI and fails the test with its output when the exit code is not the expected one. */
export async function cli(args: string[], expectCode = 0, env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const r = await runCli(args, env);
  if (r.code !== expectCode) {
    throw new Error(`lifeboat ${args.join(' ')}: exit ${r.code}, expected ${expectCode}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r;
}

export { initRepo } from './helpers.js';

/** Total size of the files below dir (0 when it does not exist); tolerant of files appearing meanwhile. */
export async function dirSize(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await dirSize(p);
    else if (e.isFile()) total += await fs.stat(p).then((s) => s.size, () => 0);
  }
  return total;
}

/** Entries below dir as sorted relative paths: regular files only, or every entry. */
export async function listBelow(dir: string, filesOnly: boolean, rel = ''): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const r = path.join(rel, e.name);
    if (!filesOnly || e.isFile()) out.push(r);
    if (e.isDirectory()) out.push(...(await listBelow(dir, filesOnly, r)));
  }
  return out.sort();
}

export const filesBelow = (dir: string) => listBelow(dir, true);
export const entriesBelow = (dir: string) => listBelow(dir, false);

/** Content-only view of snapshotOf (type, size, sha256, link target) for byte-identity checks. */
export function contentView(s: Record<string, Meta>): Record<string, Pick<Meta, 'type' | 'size' | 'content' | 'target'>> {
  const out: Record<string, Pick<Meta, 'type' | 'size' | 'content' | 'target'>> = {};
  for (const [k, m] of Object.entries(s)) {
    out[k] = { type: m.type, size: m.size, ...(m.content !== undefined ? { content: m.content } : {}), ...(m.target !== undefined ? { target: m.target } : {}) };
  }
  return out;
}

/** Restores `ref` into a fresh target and asserts the tree below it equals `src` exactly. */
export async function expectRestoreIdentical(repo: string, ref: string, src: string): Promise<void> {
  const out = path.join(tmpdir('lb-out-'), 'target');
  await cli(['restore', '--repo', repo, ref, '--target', out]);
  const want = await snapshotOf(src);
  const got = await snapshotOf(path.join(out, src));
  // Bytes first (the failure message then says which file differs), then all metadata.
  expect(contentView(got)).toEqual(contentView(want));
  expect(got).toEqual(want);
}

export interface Spawned {
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  kill(): void;
  exited(): boolean;
}

/** Starts the CLI without waiting, so a test can kill it. */
export function start(args: string[]): Spawned {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, LIFEBOAT_PASSWORD: PASSWORD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let exited = false;
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      exited = true;
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { done, kill: () => void child.kill('SIGKILL'), exited: () => exited || child.exitCode !== null };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function checkJson(repo: string, extra: string[] = []): Promise<{ code: number; result: { ok: boolean; problems: unknown[]; unindexedPacks: number; packsRead: number } }> {
  const r = await runCli(['check', '--repo', repo, '--json', ...extra]);
  let result;
  try {
    result = JSON.parse(r.stdout);
  } catch {
    throw new Error(`check printed no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, result };
}

export async function listSnapshots(repo: string): Promise<Array<{ id: string; paths: string[]; time: string; tree: string; tags: string[] }>> {
  return snapshotsJson(repo, PASSWORD);
}

