/**
 * Whether a process runs (isAlive, src/util/tied-child.ts: repository locks, the
 * prefetch fetcher, a restored server's postmaster.pid) and the spool's claim
 * (src/sources/postgres/receiver.ts), with real processes: a streamer
 * that has exited but is not reaped yet (a zombie: its parent, runuser on a loaded
 * host, has not waited for it) is gone, and its successor takes the spool; a live one
 * whose parent still runs is someone's service and makes the successor refuse.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { isLifeboatError } from '../../src/errors.js';
import { SpoolClaim } from '../../src/sources/postgres/receiver.js';
import { isAlive } from '../../src/util/tied-child.js';
import { waitUntil } from '../pg-streamer.js';

/** The fields of /proc/PID/stat after the command name: state first, start time 20th. */
const fields = (pid: number) => {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
};
const started = (pid: number) => fields(pid)[19] as string;
const state = (pid: number) => fields(pid)[0];

let parent: ChildProcess | undefined;
let dir = '';
afterEach(() => {
  parent?.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A parent (sleep, which never reaps) and its child, which exits after a second (a zombie then: the shell has become sleep) unless `childLives`. */
async function family(childLives: boolean): Promise<{ parentPid: number; childPid: number }> {
  parent = spawn('/bin/sh', ['-c', `${childLives ? 'sleep 60' : 'sleep 1'} & echo $!; exec sleep 60`], { stdio: ['ignore', 'pipe', 'ignore'] });
  const childPid = await new Promise<number>((resolve) => createInterface({ input: parent!.stdout! }).once('line', (l) => resolve(Number(l))));
  const parentPid = parent.pid as number;
  await waitUntil('the shell to become sleep', () => readFileSync(`/proc/${parentPid}/cmdline`, 'utf8').startsWith('sleep'), 10_000, 10);
  if (!childLives) await waitUntil('the child to be a zombie', () => state(childPid) === 'Z', 10_000, 10);
  return { parentPid, childPid };
}

function pidFile(streamer: number, parentPid: number): void {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lb-claim-'));
  writeFileSync(path.join(dir, 'lifeboat-stream.pid'), JSON.stringify({ streamer: { pid: streamer, start: started(streamer) }, parent: { pid: parentPid, start: started(parentPid) }, receiver: null }));
}

describe('SpoolClaim.take', () => {
  it('takes the spool from a streamer that exited and is not reaped yet, under a parent that still runs', async () => {
    const { parentPid, childPid } = await family(false);
    pidFile(childPid, parentPid);
    const claim = await SpoolClaim.take(dir);
    expect(JSON.parse(readFileSync(path.join(dir, 'lifeboat-stream.pid'), 'utf8')).streamer.pid).toBe(process.pid);
    expect(claim).toBeDefined();
  });

  it('refuses (LOCKED) while that streamer still runs under its parent', async () => {
    const { parentPid, childPid } = await family(true);
    pidFile(childPid, parentPid);
    await expect(SpoolClaim.take(dir)).rejects.toSatisfy((e: unknown) => isLifeboatError(e, 'LOCKED'));
    process.kill(childPid, 'SIGKILL');
  });
});

describe('isAlive', () => {
  it('is false for a process that exited and is not reaped yet, true while it runs', async () => {
    const zombie = await family(false);
    expect(isAlive(zombie.childPid)).toBe(false);
    expect(isAlive(zombie.parentPid)).toBe(true);
    parent?.kill('SIGKILL');
    const running = await family(true);
    expect(isAlive(running.childPid)).toBe(true);
    process.kill(running.childPid, 'SIGKILL');
    expect(isAlive(0)).toBe(false);
    expect(isAlive(-1)).toBe(false);
  });
});
