/**
 * `lifeboat pg history` against a real scratch PostgreSQL 15 whose archive_command is
 * the real CLI: the transaction that deleted rows is listed with its xid, its commit
 * time and the table it deleted from (named through --dsn, else by relfilenode), among
 * the inserts around it, so the operator can pick it for the existing `pg restore --xid`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archivedCluster, lifeboatAsPostgres, type ScratchCluster } from '../pg-cluster.js';
import { switchAndArchive } from '../pg-load.js';
import { rmSync } from 'node:fs';

let base: string;
let repo: string;
let pw: string;
let cluster: ScratchCluster;

const lb = (args: string[]) => lifeboatAsPostgres([...args, '--repo', repo, '--password-file', pw]);

beforeAll(async () => {
  ({ base, repo, pw, cluster } = await archivedCluster('lb-pghist-'));
}, 120_000);

afterAll(async () => {
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

interface Listed {
  timeline: number;
  time_source: string;
  transactions: Array<{ xid: number; time: string; outcome: string; relations: Array<{ rel: string; name: string | null; ops: Record<string, number> }> }>;
}

describe('pg history', () => {
  it('lists the deleting transaction with its xid and the table it deleted from', async () => {
    await cluster.query('create table keep (id int primary key, v text)');
    await cluster.query('create table victims (id int primary key, v text)');
    await cluster.query("insert into victims select g, 'row ' || g from generate_series(1, 300) g");
    for (let i = 0; i < 10; i++) await cluster.query('insert into keep values ($1, $2)', [i, `before ${i}`]);
    const at = new Date();
    const [d] = await cluster.query<{ xid: string }>('with gone as (delete from victims where id % 2 = 0 returning 1) select txid_current()::text as xid');
    const xid = Number(d!.xid);
    for (let i = 10; i < 20; i++) await cluster.query('insert into keep values ($1, $2)', [i, `after ${i}`]);
    const [{ node }] = (await cluster.query<{ node: string }>("select pg_relation_filenode('victims')::text as node")) as [{ node: string }];
    await switchAndArchive(cluster);

    const r = await lb(['--json', 'pg', 'history', 'main', '--around', at.toISOString(), '--limit', '30', '--dsn', cluster.dsn]);
    expect(r.code, r.stderr).toBe(0);
    const h = JSON.parse(r.stdout) as Listed;
    expect(h.timeline).toBe(1);
    const del = h.transactions.find((t) => t.xid === xid);
    expect(del, `xid ${xid} in ${h.transactions.map((t) => t.xid).join(' ')}`).toBeDefined();
    expect(del!.outcome).toBe('commit');
    expect(Math.abs(Date.parse(del!.time) - at.getTime())).toBeLessThan(60_000);
    const victims = del!.relations.find((x) => x.name === 'public.victims');
    expect(victims?.ops.DELETE).toBe(150);
    expect(victims?.rel).toMatch(new RegExp(`^\\d+/\\d+/${node}$`));
    expect(del!.relations.some((x) => x.name === 'public.keep')).toBe(false);
    // The inserts around it are listed against the other table.
    const inserts = h.transactions.filter((t) => t.relations.some((x) => x.name === 'public.keep' && x.ops.INSERT === 1));
    expect(inserts.length).toBeGreaterThanOrEqual(10);
    expect(inserts.some((t) => t.xid < xid) && inserts.some((t) => t.xid > xid)).toBe(true);

    // Without --dsn the relation is its relfilenode; the human listing shows the xid.
    const plain = await lb(['pg', 'history', 'main', '--around', at.toISOString(), '--limit', '30']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(new RegExp(`^\\s*${xid}\\s+\\S+\\s+rel \\d+/\\d+/${node} \\(DELETE 150`, 'm'));
    expect(plain.stdout).toMatch(/pg restore --name main --xid XID/);

    const none = await lb(['pg', 'history', 'nosuch', '--around', at.toISOString()]);
    expect(none.code).toBe(15);
    expect(none.stderr).toMatch(/no archived WAL of PostgreSQL "nosuch"/);
  }, 180_000);
});
