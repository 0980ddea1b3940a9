/**
 * The job protocol's two halves: parseJobEvent refuses whatever is not an event of this
 * version, and the daemon's reader (runLifeboat) delivers the spec, splits events that
 * arrive in pieces, and turns each way a child can break the protocol into JOB_PROTOCOL.
 * The children here are small node scripts, so each rule is met exactly once.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LifeboatConfig } from '../../src/config/config.js';
import { runLifeboat } from '../../src/daemon/job-child.js';
import { JobProtocolError, parseJobEvent, parseJobSpec } from '../../src/daemon/job-protocol.js';
import { CLI, cleanupTmp, tmpdir } from '../helpers.js';

afterAll(() => cleanupTmp());

describe('parseJobEvent', () => {
  it('reads each type of event of version 1', () => {
    expect(parseJobEvent('{"v":1,"type":"progress","phase":"backup","files":2,"bytes":10,"total_bytes":20}')).toEqual({ v: 1, type: 'progress', phase: 'backup', files: 2, bytes: 10, total_bytes: 20 });
    expect(parseJobEvent('{"v":1,"type":"result","value":null}')).toEqual({ v: 1, type: 'result', value: null });
    // Totals, percent, rate and ETA (docs/progress.md): optional, in the same version.
    expect(parseJobEvent('{"v":1,"type":"progress","phase":"restore","files":2,"bytes":10,"total_files":4,"total_bytes":20,"percent":50,"rate":5,"eta_seconds":2}')).toEqual({
      v: 1, type: 'progress', phase: 'restore', files: 2, bytes: 10, total_files: 4, total_bytes: 20, percent: 50, rate: 5, eta_seconds: 2,
    });
    expect(parseJobEvent('{"v":1,"type":"log","level":"warning","message":"m"}')).toEqual({ v: 1, type: 'log', level: 'warning', message: 'm' });
    expect(parseJobEvent('{"v":1,"type":"error","code":"UNSAFE_PATH","message":"m","hint":"h","exit":13}')).toEqual({ v: 1, type: 'error', code: 'UNSAFE_PATH', message: 'm', hint: 'h', exit: 13 });
  });

  it('refuses anything else', () => {
    for (const line of [
      'not json',
      '[1]',
      '{"type":"result","value":1}', // no version
      '{"v":2,"type":"result","value":1}',
      '{"v":1,"type":"result"}',
      '{"v":1,"type":"shout","value":1}',
      '{"v":1,"type":"error","code":"NO_SUCH_CODE","message":"m","exit":1}',
      '{"v":1,"type":"error","code":"toString","message":"m","exit":1}',
      '{"v":1,"type":"error","code":"FAILED","message":"m","exit":1.5}',
      '{"v":1,"type":"progress","phase":"x","files":-1,"bytes":0}',
      '{"v":1,"type":"progress","phase":"x","files":1,"bytes":0,"percent":-5}',
      '{"v":1,"type":"progress","phase":"x","files":1,"bytes":0,"eta_seconds":"soon"}',
    ]) {
      expect(() => parseJobEvent(line), line).toThrow(JobProtocolError);
    }
  });

  it('reads a spec and refuses one without a command', () => {
    expect(parseJobSpec('{"v":1,"id":"j","argv":["prune"],"repository":"main","config":"/c.yaml"}')).toEqual({ v: 1, id: 'j', argv: ['prune'], repository: 'main', config: '/c.yaml' });
    expect(() => parseJobSpec('{"v":1,"id":"j","argv":[],"repository":"main","config":"/c.yaml"}')).toThrow(JobProtocolError);
    expect(() => parseJobSpec('{"v":1,"id":"j","argv":["a",1],"repository":"main","config":"/c.yaml"}')).toThrow(JobProtocolError);
  });
});

describe("the daemon's reader of a job child", () => {
  const dir = tmpdir('lb-jobproto-');
  const config = { file: path.join(dir, 'lifeboat.yaml') } as LifeboatConfig;
  let n = 0;
  /** Runs a child whose body is `code` (ESM, with `send(text)` writing to fd 3 and `spec` read from stdin). */
  const child = (code: string, hooks: Parameters<typeof runLifeboat>[3] = {}) => {
    const entry = path.join(dir, `child-${n++}.mjs`);
    writeFileSync(
      entry,
      `import { writeSync, readFileSync } from 'node:fs';\nconst send = (t) => writeSync(3, t);\nconst spec = JSON.parse(readFileSync(0, 'utf8'));\n${code}\n`,
    );
    return runLifeboat(config, 'main', ['backup', '--name', 'docs', '/srv'], { ...hooks, id: 'job-1', entry });
  };

  it('hands the spec on stdin and takes the result and the error event, split across writes', async () => {
    const progress: unknown[] = [];
    const out = await child(
      `send('{"v":1,"type":"progress","phase":"scan",'); await new Promise((r) => setTimeout(r, 20)); send('"files":1,"bytes":5}\\n{"v":1,"type":"result","value":' + JSON.stringify(spec) + '}\\n');
       send('{"v":1,"type":"error","code":"PARTIAL","message":"1 item(s) could not be read","hint":"see the warnings above","exit":3}\\n'); process.exitCode = 3;`,
      { onProgress: (p) => progress.push(p) },
    );
    expect(progress).toEqual([{ phase: 'scan', files: 1, bytes: 5 }]);
    expect(out.result).toEqual({ v: 1, id: 'job-1', argv: ['backup', '--name', 'docs', '/srv'], repository: 'main', config: config.file });
    expect(out).toMatchObject({ exitCode: 3, error: { code: 'PARTIAL', message: '1 item(s) could not be read', hint: 'see the warnings above' } });
  });

  it('fails with JOB_PROTOCOL on a second result and on an event after the error', async () => {
    const twice = await child(`send('{"v":1,"type":"result","value":1}\\n{"v":1,"type":"result","value":2}\\n'); setInterval(() => {}, 1000);`);
    expect(twice.error).toMatchObject({ code: 'JOB_PROTOCOL', message: expect.stringMatching(/a second result event/) });
    expect(twice.signal).toBe('SIGKILL');
    const after = await child(`send('{"v":1,"type":"error","code":"FAILED","message":"x","exit":1}\\n{"v":1,"type":"result","value":2}\\n'); process.exitCode = 1;`);
    expect(after.error).toMatchObject({ code: 'JOB_PROTOCOL', message: expect.stringMatching(/a result event after the error event/) });
  });

  it('fails with JOB_CRASHED when the child exits non-zero without an error event, and cuts an endless log line', async () => {
    const lines: string[] = [];
    const out = await child(`process.stdout.write('x'.repeat(100 * 1024) + '\\nafter\\n'); process.exitCode = 7;`, { onLine: (_s, l) => lines.push(l) });
    expect(out).toMatchObject({ exitCode: 7, error: { code: 'JOB_CRASHED', message: "the job's process exited with 7 without reporting an error" } });
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^x{65536}… \(line cut at 65536 bytes\)$/);
    expect(lines[1]).toBe('after');
  });

  it('bounds log events, and passes progress on at most every 250 ms', async () => {
    const logs: string[] = [];
    const flood = await child(`send('{"v":1,"type":"log","level":"info","message":"m"}\\n'.repeat(10_001)); setInterval(() => {}, 1000);`, { onLog: (_l, m) => logs.push(m) });
    expect(flood.error).toMatchObject({ code: 'JOB_PROTOCOL', message: expect.stringMatching(/more than 10000 log events/) });
    expect(logs).toHaveLength(10_000);
    const progress: unknown[] = [];
    // Twenty in one write: the first counts, the rest come within the interval.
    // The last ('done') always passes: the job's record ends at 100%.
    const fast = await child(
      `send(Array.from({ length: 20 }, (_, i) => JSON.stringify({ v: 1, type: 'progress', phase: 'backup', files: i, bytes: i }) + '\\n').join('') + JSON.stringify({ v: 1, type: 'progress', phase: 'done', files: 20, bytes: 20, percent: 100 }) + '\\n');`,
      { onProgress: (p) => progress.push(p) },
    );
    expect(fast.error).toBeUndefined();
    expect(progress).toEqual([{ phase: 'backup', files: 0, bytes: 0 }, { phase: 'done', files: 20, bytes: 20, percent: 100 }]);
  });

  it('succeeds with a null result when the command reports none', async () => {
    expect(await child('')).toEqual({ exitCode: 0, signal: null, result: null });
  });
});

describe('lifeboat job', () => {
  it('refuses to run when the command shown on its command line is not the spec\'s', async () => {
    const c = spawn(process.execPath, [CLI, 'job', '--', 'prune'], { stdio: ['pipe', 'ignore', 'pipe', 'pipe'] });
    c.stdin?.end(JSON.stringify({ v: 1, id: 'j', argv: ['check'], repository: 'main', config: '/nonexistent/lifeboat.yaml' }));
    let events = '';
    (c.stdio[3] as Readable).on('data', (d: Buffer) => (events += d.toString()));
    const code = await new Promise<number | null>((resolve) => c.on('close', resolve));
    const last = events.trim().split('\n').map((l) => parseJobEvent(l)).at(-1);
    expect(last).toMatchObject({ type: 'error', code: 'JOB_PROTOCOL', exit: 46, message: expect.stringMatching(/differs from the spec/) });
    expect(code).toBe(46);
  });
});
