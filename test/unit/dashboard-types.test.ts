/**
 * The dashboard (src/web/) is compiled against the API's DTOs (src/api/dto.ts): a
 * field the API renames must fail the dashboard's build, not the page at run time.
 * The test compiles a copy of src/web/ and src/api/dto.ts with tsconfig.web.json,
 * once as they are (it builds) and once with DTO fields renamed (it does not, and
 * tsc names each field where the dashboard reads it).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, cleanupTmp, tmpdir } from '../helpers.js';

const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/** A copy of what the dashboard build reads, with `edit` applied to dto.ts; tsc's exit code and output. */
async function buildCopy(edit: (dto: string) => string): Promise<{ code: number; output: string }> {
  const dir = tmpdir('lb-web-types-');
  cpSync(path.join(ROOT, 'src', 'web'), path.join(dir, 'src', 'web'), { recursive: true });
  cpSync(path.join(ROOT, 'tsconfig.web.json'), path.join(dir, 'tsconfig.web.json'));
  // package.json's "type": "module" makes the sources ES modules for tsc, as in the checkout.
  cpSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  const dto = readFileSync(path.join(ROOT, 'src', 'api', 'dto.ts'), 'utf8');
  const edited = edit(dto);
  mkdirSync(path.join(dir, 'src', 'api'));
  writeFileSync(path.join(dir, 'src', 'api', 'dto.ts'), edited);
  try {
    const r = await promisify(execFile)(process.execPath, [TSC, '-p', 'tsconfig.web.json', '--noEmit', '--pretty', 'false'], { cwd: dir });
    return { code: 0, output: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** Renames `field` inside the declaration `export const NAME = z.object({ ... });` only. */
function renameIn(name: string, field: string, to: string): (dto: string) => string {
  return (dto) => {
    const start = dto.indexOf(`export const ${name} = z.object({`);
    const end = dto.indexOf('\n});', start);
    expect(start, `dto.ts declares ${name}`).toBeGreaterThanOrEqual(0);
    const decl = dto.slice(start, end);
    expect(decl, `${name} has ${field}`).toContain(`  ${field}: `);
    return dto.slice(0, start) + decl.replace(`  ${field}: `, `  ${to}: `) + dto.slice(end);
  };
}

afterAll(() => cleanupTmp());

describe('the dashboard is typed by the API', () => {
  it('builds against the DTOs as they are', async () => {
    const r = await buildCopy((dto) => dto);
    expect(r.output).toBe('');
    expect(r.code).toBe(0);
  }, 60_000);

  it('fails to build when a field the dashboard reads is renamed, naming the field and where it is read', async () => {
    // One build with three renames (a tsc run costs seconds): each must be reported on its own.
    const renames = [
      ['Backup', 'snapshot_id'],
      ['Source', 'rpo_target_seconds'],
      ['Status', 'running_jobs'],
    ] as const;
    const r = await buildCopy((dto) => renames.reduce((text, [name, field]) => renameIn(name, field, `${field}_renamed`)(text), dto));
    expect(r.code).not.toBe(0);
    for (const [, field] of renames) {
      // e.g. "src/web/tables.ts(171,30): error TS2551: Property 'snapshot_id' does not exist on type ..."
      expect(r.output).toMatch(new RegExp(`src/web/\\w+\\.ts\\(\\d+,\\d+\\): error TS\\d+: Property '${field}' does not exist`));
    }
  }, 60_000);
});
