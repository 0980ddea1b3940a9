/**
 * A recovery target time in the future or without a zone is refused with one line
 * and a hint, before anything is opened or started: by every command that takes one
 * and by the daemon's restores and recoveries (a job is never created for it).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, runCli, tmpdir } from '../helpers.js';
import { testDaemon } from '../daemon-helpers.js';
import type { JobRow } from '../../src/daemon/catalog.js';

afterAll(cleanupTmp);

const future = () => new Date(Date.now() + 3_600_000).toISOString();
const zoneless = '2026-01-02T03:04:05';

describe('recovery target times on the command line', () => {
  it('pg restore, pg verify and sqlite restore refuse a future or zone-less time with exit 2 and a hint', async () => {
    const dir = tmpdir();
    const commands = [
      ['pg', 'restore', '--name', 'main', '--target-dir', `${dir}/pg`],
      ['pg', 'verify', '--name', 'main'],
      ['sqlite', 'restore', 'app', '--output', `${dir}/app.db`],
    ];
    for (const cmd of commands) {
      for (const [time, why] of [
        [future(), /is in the future/],
        [zoneless, /has no time zone/],
      ] as const) {
        // No repository exists there: the time is refused before one is looked for.
        const r = await runCli([...cmd, '--time', time, '--repo', `${dir}/none`, '--password-file', '/dev/null']);
        expect(r.code, `${cmd.join(' ')} --time ${time}: ${r.stderr}`).toBe(2);
        const lines = r.stderr.trim().split('\n');
        expect(lines[0]).toMatch(why);
        expect(lines[1]).toMatch(/^ {2}hint: /);
        expect(lines).toHaveLength(2);
      }
    }
  });
});

describe('recovery target times in the API', () => {
  it('restores and recoveries with a future or zone-less time are 400 USAGE and start no job', async () => {
    const t = await testDaemon({ extraSources: '  notes:\n    kind: sqlite\n    path: $DIR/notes.db' });
    try {
      const jobs = t.daemon.catalog.jobs().length;
      for (const time of [future(), zoneless]) {
        for (const [url, body] of [
          ['/api/v1/restores', { source: 'notes', target: `${t.dir}/r.db`, time }],
          ['/api/v1/recoveries', { targets: { notes: `${t.dir}/r2.db` }, time }],
        ] as const) {
          const r = await t.daemon.app.inject({ method: 'POST', url, headers: t.auth('operator'), payload: body });
          expect(r.statusCode, `${url} ${time}: ${r.body}`).toBe(400);
          const err = (r.json() as { error: { code: string; message: string; hint: string } }).error;
          expect(err.code).toBe('USAGE');
          expect(err.message).toMatch(time === zoneless ? /has no time zone/ : /is in the future/);
          expect(err.hint).toBeTruthy();
        }
      }
      expect(t.daemon.catalog.jobs().length).toBe(jobs);
      // A past time with a zone still starts the job (it fails later: nothing was backed up).
      const ok = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/restores', headers: t.auth('operator'), payload: { source: 'notes', target: `${t.dir}/r3.db`, time: new Date(Date.now() - 1000).toISOString() } });
      expect(ok.statusCode, ok.body).toBe(202);
      await t.daemon.runner.wait((ok.json() as JobRow).id);
    } finally {
      await t.daemon.stop();
    }
  });
});
