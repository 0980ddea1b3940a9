/**
 * `lifeboat quickstart`, the README's main job: it must work from nothing, finish
 * well under a minute, bring the deleted rows back, and be safe to run twice; its
 * memory graph is declared, so a drill afterwards checks the graph.
 */
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, runCli, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

describe('lifeboat quickstart', () => {
  it('replicates, recovers from the accident with measured RPO and RTO, and runs again', async () => {
    const dir = path.join(tmpdir('lb-quickstart-'), 'lifeboat-quickstart');
    // The quickstart makes its own password file; no password in the environment.
    const env = { LIFEBOAT_PASSWORD: undefined, LIFEBOAT_PASSWORD_FILE: undefined };
    const first = await runCli(['quickstart', '--dir', dir, '--seconds', '2'], env, { timeoutMs: 60_000 });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/\$ lifeboat --repo .* sqlite replicate /);
    // Every deleted memory comes back: the restore stops just before the accident's
    // transaction, which the quickstart finds in `sqlite history` and names.
    expect(first.stdout).toMatch(/Recovered: (\d+) of \1 deleted memories/);
    expect(first.stdout).toMatch(/\$ lifeboat .* sqlite history memory --around \S+ --limit 500/);
    expect(first.stdout).toMatch(/the accident is transaction (\d+) of generation [0-9a-f]+: the only transaction near the accident that removed rows/);
    expect(first.stdout).toMatch(/\$ lifeboat .* sqlite restore memory --before-txn \d+ --generation [0-9a-f]+ /);
    expect(first.stdout).toMatch(/, 0 of \d+ transactions committed before the accident not in the restore/);
    expect(first.stdout).toMatch(/RPO \(data-loss window\): \d+\.\d\d s/);
    expect(first.stdout).toMatch(/RTO \(restore until verified\): \d+\.\d\d s/);

    const again = await runCli(['--json', 'quickstart', '--dir', dir, '--seconds', '2'], env, { timeoutMs: 60_000 });
    expect(again.code, again.stderr).toBe(0);
    const r = JSON.parse(again.stdout) as {
      integrity: string;
      foreignKeyViolations: number;
      accident: { nodes: number };
      recovered: { nodes: number };
      inWindow: number;
      rpoSeconds: number;
      rtoSeconds: number;
      durationSeconds: number;
    };
    expect(r.integrity).toBe('ok');
    expect(r.foreignKeyViolations).toBe(0);
    expect(r.accident.nodes).toBeGreaterThan(0);
    expect(r.recovered.nodes).toBe(r.accident.nodes);
    expect(r.inWindow).toBe(0);
    expect(r.rpoSeconds).toBe(0);
    expect(r.durationSeconds).toBeLessThan(60);

    // The memory graph is declared (its lifeboat.yaml): a drill afterwards checks it.
    const drill = await runCli(['--repo', path.join(dir, 'repo'), '--password-file', path.join(dir, 'password'), '--json', 'drill'], env, { timeoutMs: 60_000 });
    expect(drill.code, drill.stderr).toBe(0);
    const [d] = JSON.parse(drill.stdout) as Array<{ ok: boolean; checks: Array<{ name: string; ok: boolean; detail: string }>; graph?: { edges: { edges: { dangling: number; restored: number } }; queries: Array<{ name: string; ms: number; backup_ms: number | null }> } }>;
    expect(d?.ok).toBe(true);
    expect(d?.checks.map((c) => c.name)).toEqual(['integrity_check', 'foreign_key_check', 'dangling_edges:edges', 'graph_counts', 'query:recall', 'query:related-concepts']);
    expect(d?.graph?.edges.edges.dangling).toBe(0);
    expect(d?.graph?.edges.edges.restored).toBeGreaterThan(0);
    expect(d?.graph?.queries.map((q) => q.name)).toEqual(['recall', 'related-concepts']);
    for (const q of d?.graph?.queries ?? []) {
      expect(q.ms).toBeGreaterThan(0);
      expect(q.backup_ms).not.toBeNull();
    }
  });
});
