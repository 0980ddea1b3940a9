/**
 * What the CLI loads to start, which every process pays for (one per archived WAL
 * segment, a couple of thousand in this suite): the bundle (scripts/bundle.mjs), with
 * zod's code joined in and its unused locales left out; and never a bundle older than
 * the compiled files, which would run other code than was just built.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, cleanupTmp, loadedModules, runCli, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

const preload = ['--import', path.join(ROOT, 'test/fixtures/module-log.mjs')].join(' ');
/** The files the process read modules from, bundle or not. */
const files = (log: string): string[] => readFileSync(log, 'utf8').split('\n').filter((u) => u.startsWith('file:')).map((u) => fileURLToPath(u));
const under = (dir: string) => (f: string) => f.startsWith(dir + path.sep);

describe('CLI start-up', () => {
  it('runs the bundle: the program and zod in a few files, without the zod locales it does not use', async () => {
    const dir = tmpdir();
    const log = path.join(dir, 'modules');
    const r = await runCli(['init', '--repo', path.join(dir, 'repo')], { NODE_OPTIONS: preload, MODULE_LOG: log });
    expect(r.code, r.stderr).toBe(0);
    const read = files(log);
    expect(read.filter(under(path.join(ROOT, 'dist', 'bundle'))).length, 'no bundle ran: build with `npm run build` (a bare tsc leaves it older than dist/)').toBeGreaterThan(0);
    // No module of the program or of zod from its own file...
    expect(read.filter((f) => under(path.join(ROOT, 'dist'))(f) && !under(path.join(ROOT, 'dist', 'bundle'))(f))).toEqual([]);
    // (node_modules may be a link: its files are known by their real paths.)
    const zod = (f: string): boolean => f.includes(`${path.sep}node_modules${path.sep}zod${path.sep}`);
    expect(read.filter(zod)).toEqual([]);
    // ...yet the command's code and zod's ran, joined into the bundle's files.
    const loaded = loadedModules(log);
    expect(loaded).toContain(path.join(ROOT, 'dist/cli/commands/init.js'));
    expect(loaded.filter(zod).some((f) => f.endsWith(path.join('v4', 'classic', 'schemas.js')))).toBe(true);
    // zod's messages are English; its 60-odd other locales are not loaded.
    const locales = loaded.filter((f) => zod(f) && f.split(path.sep).includes('locales'));
    expect([...new Set(locales.map((f) => path.basename(f)))]).toEqual(['en.js']);
  });

  it('loads the option model and every kind of source without building their schemas (built when a command reads them)', async () => {
    const dist = (f: string) => JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', f)).href);
    const script = [
      `const { lazilyBuilt } = await import(${dist('config/schema.js')});`,
      `await import(${dist('sources/all.js')});`,
      `const model = await import(${dist('config/model.js')});`,
      'const atLoad = lazilyBuilt();',
      // Asked for, one is built once, with the schemas it is made of.
      'const a = model.groupCheckOptions();',
      'const asked = lazilyBuilt();',
      'const same = model.groupCheckOptions() === a && lazilyBuilt() === asked;',
      'console.log(JSON.stringify({ atLoad, asked, same }));',
    ].join('\n');
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    // groupCheckOptions is built from checkQueryOptions: two.
    expect(JSON.parse(r.stdout)).toEqual({ atLoad: 0, asked: 2, same: true });
  });

  it('runs the compiled files, not the bundle, when they are newer (a `tsc` run since the bundle)', async () => {
    // A copy of the package, so the shared dist/ keeps its times.
    const copy = tmpdir('lb-startup-');
    for (const f of ['package.json', 'bin', 'dist']) await fs.cp(path.join(ROOT, f), path.join(copy, f), { recursive: true, preserveTimestamps: true });
    await fs.symlink(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
    const cli = path.join(copy, 'bin', 'lifeboat.js');
    const log = path.join(copy, 'modules');
    const run = async (bundleTime: number, compiledTime: number, recordTime = compiledTime): Promise<string[]> => {
      await fs.utimes(path.join(copy, 'dist/bundle/main.js'), bundleTime, bundleTime);
      await fs.utimes(path.join(copy, 'dist/cli/main.js'), compiledTime, compiledTime);
      await fs.utimes(path.join(copy, 'dist/.tsbuildinfo'), recordTime, recordTime);
      await fs.rm(log, { force: true });
      const r = await runCli(['--version'], { NODE_OPTIONS: preload, MODULE_LOG: log }, { cli });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
      return files(log);
    };
    const now = Date.now() / 1000;
    // Built in the usual order, the bundle runs...
    let read = await run(now, now - 10);
    expect(read).toContain(path.join(copy, 'dist/bundle/main.js'));
    expect(read).not.toContain(path.join(copy, 'dist/cli/main.js'));
    // ...and not once tsc has written newer files.
    read = await run(now - 10, now);
    expect(read).toContain(path.join(copy, 'dist/cli/main.js'));
    expect(read.filter(under(path.join(copy, 'dist', 'bundle')))).toEqual([]);
    // An incremental tsc that wrote other files, not main.js: its record is newer than the bundle.
    read = await run(now - 10, now - 20, now);
    expect(read).toContain(path.join(copy, 'dist/cli/main.js'));
    expect(read.filter(under(path.join(copy, 'dist', 'bundle')))).toEqual([]);
  });
});
