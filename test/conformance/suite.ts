/**
 * The source conformance suite: one set of tests that every kind of data runs
 * through its driver (test/conformance/drivers/), in the manner of the storage suite
 * (src/storage/testing/suite.ts). Back up, change, back up again; restore each backup
 * and compare with the fingerprint taken when it was made; where the kind has a log,
 * restore to several moments (by time, and by position where the log has positions)
 * and compare with what was recorded then; drill; and a restore into a target that
 * exists is refused with exit 21.
 *
 * Every backup, restore and drill is the command the daemon would run: built by
 * jobCommand() from the lifeboat.yaml the driver wrote, run by the real CLI with the
 * daemon's global options and environment. So the suite checks each kind end to end
 * through the same seam the daemon and the runbook use.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, type SourceConfig } from '../../src/config/config.js';
import { childEnv, jobCommand, type JobRequest, type RestoreParams } from '../../src/daemon/jobs.js';
import { cleanupTmp, type CliResult } from '../helpers.js';
import type { Fingerprint, KindDriver, Subject } from './driver.js';

/** A moment the suite recorded: when, where the log was (if it has positions), and the data then. */
interface Recorded {
  label: string;
  time: number;
  position?: string;
  fingerprint: Fingerprint;
}

interface JobRun extends CliResult {
  args: string[];
  result: Record<string, unknown>;
}

/** Runs one daemon job for the subject's source, as the daemon's job runner would start it. */
async function runJob(s: Subject, req: Omit<JobRequest, 'source' | 'trigger'>, extra: string[] = []): Promise<JobRun> {
  const config = loadConfig(s.config);
  const source = config.sources.get(s.source) as SourceConfig;
  const args = ['--json', '--config', config.file, '--repo', source.repository, ...jobCommand(config, { ...req, source: s.source, trigger: 'conformance' }), ...extra];
  const r = await s.cli(args, { ...childEnv(config, source), LIFEBOAT_PROGRESS: 'json', LIFEBOAT_CONFIG: config.file });
  return { ...r, args, result: lastJson(r.stdout) };
}

/** A command's result: the one JSON document it printed (or the last line of a stream). */
function lastJson(stdout: string): Record<string, unknown> {
  const text = stdout.trim();
  for (const candidate of [text, text.split('\n').pop() ?? '']) {
    try {
      return JSON.parse(candidate) as Record<string, unknown>;
    } catch {
      // not this one
    }
  }
  return {};
}

function explain(run: JobRun): string {
  return `lifeboat ${run.args.join(' ')}\nexit ${run.code}\nstdout: ${run.stdout.slice(-2000)}\nstderr: ${run.stderr.slice(-3000)}`;
}

async function succeeds(s: Subject, req: Omit<JobRequest, 'source' | 'trigger'>, extra: string[] = []): Promise<JobRun> {
  const run = await runJob(s, req, extra);
  expect(run.code, explain(run)).toBe(0);
  return run;
}

/** Restores with these parameters into a fresh target and returns the restored data's fingerprint. */
async function restoreAndLook(s: Subject, label: string, params: Omit<RestoreParams, 'target'>, extra: string[] = []): Promise<{ target: string; fingerprint: Fingerprint; run: JobRun }> {
  const target = s.target(label);
  const run = await succeeds(s, { kind: 'restore', restore: { ...params, target } }, extra);
  return { target, fingerprint: await s.restored(target), run };
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * For the tests that run many jobs: a server kind starts its data (initdb), takes base
 * backups, and starts each restore twice (the job's own start, checks and promotion,
 * then once more to read it): about five seconds a restore on a quiet machine and
 * several times that beside a loaded test run.
 */
const MANY_JOBS_MS = 300_000;

export function conformanceSuite(driver: KindDriver): void {
  describe(`source conformance: ${driver.kind}`, () => {
    let s: Subject | undefined;
    const backups: Array<Recorded & { snapshot: string }> = [];
    const moments: Recorded[] = [];
    let firstTarget: string | undefined;
    const subject = (): Subject => {
      if (!s) throw new Error(`the ${driver.kind} driver did not start (see the first test)`);
      return s;
    };

    afterAll(async () => {
      await s?.close();
      cleanupTmp();
    });

    it('backs up, changes the data and backs up again, with the backup job the daemon runs', async () => {
      s = await driver.setup();
      for (const step of [0, 1]) {
        if (step > 0) await s.change(step);
        const run = await succeeds(s, { kind: 'backup' });
        const snapshot = run.result.id;
        expect(typeof snapshot, explain(run)).toBe('string');
        const time = await s.moment();
        backups.push({ label: `backup-${step + 1}`, snapshot: snapshot as string, time, fingerprint: await s.fingerprint() });
      }
      // Otherwise every comparison below would pass whichever backup a restore brought back.
      expect(backups[1]?.fingerprint, 'the change changed the fingerprint').not.toEqual(backups[0]?.fingerprint);
      expect(backups[1]?.snapshot).not.toBe(backups[0]?.snapshot);
    }, MANY_JOBS_MS);

    it('restores each backup, by its time and (where the kind names snapshots) by its id, to the data it was taken from', async () => {
      const s = subject();
      for (const b of backups) {
        const byTime = await restoreAndLook(s, `${b.label}-time`, { time: iso(b.time) });
        firstTarget ??= byTime.target;
        // Each backup is what the restore starts from, not an older one replayed forward.
        expect(byTime.run.result.snapshot, explain(byTime.run)).toBe(b.snapshot);
        expect(byTime.fingerprint, `${b.label} restored to ${iso(b.time)}`).toEqual(b.fingerprint);
        if (s.restoresSnapshotIds) {
          const byId = await restoreAndLook(s, `${b.label}-id`, { snapshot: b.snapshot });
          expect(byId.run.result.snapshot, explain(byId.run)).toBe(b.snapshot);
          expect(byId.fingerprint, `${b.label} restored by id ${b.snapshot}`).toEqual(b.fingerprint);
        }
      }
      // Without a time or a snapshot the daemon restores the newest state.
      const newest = await restoreAndLook(s, 'newest', {});
      expect(newest.fingerprint, 'restored without a time').toEqual(backups.at(-1)?.fingerprint);
    }, MANY_JOBS_MS);

    it.runIf(driver.hasLog)('records several moments of its log: a change, then a moment the log proves it holds', async () => {
      const s = subject();
      const log = s.log;
      if (!log) throw new Error(`the ${driver.kind} driver says it has a log but its subject has none`);
      await log.start();
      try {
        for (const step of [2, 3, 4]) {
          await s.change(step);
          const position = await log.position?.now();
          const time = await s.moment();
          moments.push({ label: `moment-${step}`, time, ...(position === undefined ? {} : { position }), fingerprint: await s.fingerprint() });
        }
      } finally {
        await log.stop();
      }
      const fingerprints = moments.map((m) => JSON.stringify(m.fingerprint));
      expect(new Set(fingerprints).size, 'each change changed the fingerprint').toBe(moments.length);
      expect(moments.some((m) => m.position !== undefined), 'positions recorded').toBe(driver.hasPositions === true);
    });

    it.runIf(driver.hasLog)('restores to each moment of its log by time, and without a time to the newest', async () => {
      const s = subject();
      expect(moments.length, 'moments recorded (see the test before)').toBe(3);
      for (const m of moments) {
        const byTime = await restoreAndLook(s, `${m.label}-time`, { time: iso(m.time) });
        expect(byTime.fingerprint, `${m.label} restored to ${iso(m.time)}`).toEqual(m.fingerprint);
      }
      const newest = await restoreAndLook(s, 'newest-after-log', {});
      expect(newest.fingerprint, 'restored without a time, after the log').toEqual(moments.at(-1)?.fingerprint);
    }, MANY_JOBS_MS);

    it.runIf(driver.hasPositions === true)('restores to each moment of its log by position', async () => {
      const s = subject();
      const position = s.log?.position;
      if (!position) throw new Error(`the ${driver.kind} driver says its log has positions but gives none`);
      expect(moments.length, 'moments recorded (see the tests before)').toBe(3);
      for (const m of moments) {
        const byPosition = await restoreAndLook(s, `${m.label}-position`, {}, position.args(m.position as string));
        expect(byPosition.fingerprint, `${m.label} restored to position ${m.position}`).toEqual(m.fingerprint);
      }
    }, MANY_JOBS_MS);

    it('drills the source: the drill job succeeds and measures a recovery time', async () => {
      const run = await succeeds(subject(), { kind: 'drill' });
      expect(run.result.ok, explain(run)).toBe(true);
      expect(run.result.rto_seconds, explain(run)).toBeGreaterThan(0);
      const checks = run.result.checks as Array<{ name: string; ok: boolean }> | undefined;
      expect(checks?.length, explain(run)).toBeGreaterThan(0);
      expect(checks?.filter((c) => !c.ok), explain(run)).toEqual([]);
    });

    it('refuses a restore into a target that exists (exit 21) and leaves that target as it was', async () => {
      const s = subject();
      const target = firstTarget;
      if (target === undefined) throw new Error('no earlier restore to reuse the target of');
      const first = backups[0] as Recorded;
      const run = await runJob(s, { kind: 'restore', restore: { time: iso(first.time), target } });
      expect(run.code, explain(run)).toBe(21);
      expect(run.stderr).toMatch(/already exists/);
      expect(await s.restored(target)).toEqual(first.fingerprint);
    });
  });
}
