/**
 * The quickstart's accident on a loaded machine: `stress-ng --cpu 2` runs beside it
 * (on these 2-core machines the replicator, the sample application and the restore
 * all compete with it), and still every deleted memory comes back and not one of the
 * transactions committed before the accident is lost — the restore stops just before
 * the accident's transaction, found in `sqlite history`, not at a time the loaded
 * replicator's clock would blur.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, runCli, tmpdir } from '../helpers.js';

let stress: ChildProcess | undefined;

/** Stops stress-ng (by its own pid) and waits until it has gone. */
async function stopStress(): Promise<void> {
  const s = stress;
  if (s && s.exitCode === null && s.signalCode === null) {
    const gone = new Promise((resolve) => s.on('close', resolve));
    s.kill('SIGTERM'); // stress-ng stops its workers on SIGTERM
    await gone;
  }
}

afterAll(async () => {
  await stopStress();
  cleanupTmp();
});

/** Starts `stress-ng --cpu 2` and resolves once its workers run (it says so on stderr). */
function startStress(): Promise<ChildProcess> {
  // --timeout: should this test die without its afterAll, the load still ends.
  const child = spawn('stress-ng', ['--cpu', '2', '--timeout', '300s'], { stdio: ['ignore', 'pipe', 'pipe'] });
  stress = child;
  return new Promise((resolve, reject) => {
    let text = '';
    const seen = (d: Buffer) => {
      text += d.toString();
      if (/dispatching hogs/.test(text)) resolve(child);
    };
    child.stdout?.on('data', seen);
    child.stderr?.on('data', seen);
    child.on('error', reject);
    child.on('close', (code) => reject(new Error(`stress-ng exited ${code} before loading the machine: ${text}`)));
  });
}

describe('lifeboat quickstart under load', () => {
  it('restores to just before the accident transaction with stress-ng --cpu 2 beside it: 0 transactions lost', async () => {
    const load = await startStress();
    const dir = path.join(tmpdir('lb-quickstart-load-'), 'lifeboat-quickstart');
    const env = { LIFEBOAT_PASSWORD: undefined, LIFEBOAT_PASSWORD_FILE: undefined };
    const run = await runCli(['--json', 'quickstart', '--dir', dir, '--seconds', '3'], env, { timeoutMs: 120_000 });
    // The load ran for the whole quickstart; then it goes, not to slow the tests beside this one.
    expect(load.exitCode).toBeNull();
    await stopStress();
    expect(run.code, run.stderr).toBe(0);
    const r = JSON.parse(run.stdout) as {
      committed: number;
      accident: { nodes: number; edges: number; txn: number; why: string };
      recovered: { nodes: number; edges: number };
      inWindow: number;
      lostTransactions: number;
      rpoSeconds: number;
      integrity: string;
      foreignKeyViolations: number;
    };
    expect(r.accident.nodes).toBeGreaterThan(0);
    expect(r.accident.txn).toBeGreaterThan(1);
    expect(r.accident.why).toMatch(new RegExp(`removed rows: ${r.accident.nodes} from nodes, ${r.accident.edges} from edges`));
    expect(r.recovered).toEqual({ nodes: r.accident.nodes, edges: r.accident.edges });
    expect(r.inWindow).toBe(0);
    expect(r.lostTransactions).toBe(0);
    expect(r.rpoSeconds).toBe(0);
    expect(r.integrity).toBe('ok');
    expect(r.foreignKeyViolations).toBe(0);
  }, 180_000);
});
