/**
 * Checks a restored Redis dataset must pass before it is handed out: `redis-check-rdb`
 * on the saved file, the key counts and the dataset's memory against what was recorded
 * at backup time (when nothing was replayed on top: counts equal, memory within
 * MEMORY_TOLERANCE, since allocator and encoding details differ), and the operator's own checks,
 * `COMMAND ARG… => REPLY`, run on the scratch server before it saves.
 */
import { execFile } from 'node:child_process';
import { LifeboatError } from '../../errors.js';
import { RespError, type RespValue } from './resp.js';
import { keyspace, type RedisConnection } from './connection.js';

export interface UserCheck {
  /** As written, for messages. */
  text: string;
  args: string[];
  expected: string;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * Commands a check may not run: they would change the scratch server, what it saves
 * or where, or never answer. A check asks; it does not act.
 */
const REFUSED = new Set([
  'shutdown', 'config', 'replicaof', 'slaveof', 'save', 'bgsave', 'bgrewriteaof', 'monitor', 'subscribe', 'psubscribe', 'ssubscribe',
  'sync', 'psync', 'client', 'acl', 'module', 'failover', 'cluster', 'flushall', 'flushdb', 'script', 'function', 'select', 'swapdb',
  'multi', 'exec', 'quit', 'reset', 'auth', 'hello', 'wait', 'waitaof', 'blpop', 'brpop', 'blmove', 'brpoplpush', 'bzpopmin', 'bzpopmax', 'blmpop', 'bzmpop',
]);

const CHECK_HINT = 'write a check as `COMMAND ARG… => REPLY`, e.g. `GET config:version => 7` or `EXISTS user:1 => 1` (arrays: elements joined by \\n, nil: (nil))';

/** Splits words on whitespace; "double" (with \\ escapes) and 'single' quotes keep spaces. */
export function splitWords(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i] as string)) i++;
    if (i >= text.length) break;
    let word = '';
    while (i < text.length && !/\s/.test(text[i] as string)) {
      const c = text[i] as string;
      if (c === '"' || c === "'") {
        const close = c;
        i++;
        for (;;) {
          if (i >= text.length) throw new LifeboatError('USAGE', `unbalanced ${close} in check "${text}"`, { hint: CHECK_HINT });
          const d = text[i] as string;
          if (d === close) break;
          if (close === '"' && d === '\\' && i + 1 < text.length) {
            i++;
            const e = text[i] as string;
            word += e === 'n' ? '\n' : e === 't' ? '\t' : e;
          } else word += d;
          i++;
        }
        i++;
      } else {
        word += c;
        i++;
      }
    }
    out.push(word);
  }
  return out;
}

/** Reads `COMMAND ARG… => REPLY`; USAGE naming the check when it is not one. */
export function parseCheck(text: string): UserCheck {
  const at = text.indexOf('=>');
  if (at < 0) throw new LifeboatError('USAGE', `check "${text}" has no "=> REPLY"`, { hint: CHECK_HINT });
  const args = splitWords(text.slice(0, at));
  const name = args[0]?.toLowerCase();
  if (!name) throw new LifeboatError('USAGE', `check "${text}" has no command`, { hint: CHECK_HINT });
  const debugRead = name === 'debug' && /^digest(-value)?$/i.test(args[1] ?? '');
  if (REFUSED.has(name) || (name === 'debug' && !debugRead) || name.startsWith('eval') || name.startsWith('fcall')) {
    throw new LifeboatError('USAGE', `check "${text}" runs ${name.toUpperCase()}, which a check may not`, { hint: 'a check reads; it cannot change the restored server or block' });
  }
  const expected = text.slice(at + 2).trim().replace(/\\n/g, '\n');
  return { text: text.trim(), args, expected };
}

/** A reply as the text a check compares: integers as digits, bulk as its string, nil as (nil), arrays one element a line. */
export function renderReply(v: RespValue): string {
  if (v === null) return '(nil)';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof RespError) return `(error) ${v.message}`;
  return v.map(renderReply).join('\n');
}

/** Runs the checks in database 0 of `conn`; one result each, never throws for a mismatch. */
export async function runChecks(conn: RedisConnection, checks: readonly UserCheck[]): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const c of checks) {
    const got = renderReply(await conn.call(c.args));
    const ok = got === c.expected;
    out.push({ name: `check ${c.text}`, ok, detail: ok ? 'matches' : `got ${JSON.stringify(got.slice(0, 200))}, expected ${JSON.stringify(c.expected.slice(0, 200))}` });
  }
  return out;
}

/** Keys per database as the server's INFO keyspace says. */
export async function keysOf(conn: RedisConnection): Promise<Record<string, number>> {
  return keyspace(await conn.info('keyspace'));
}

/** Exact comparison of keys per database (empty databases left out on both sides). */
export function compareKeys(got: Record<string, number>, recorded: Record<string, number>): CheckResult {
  const nonEmpty = (r: Record<string, number>) => Object.entries(r).filter(([, n]) => n > 0).sort(([a], [b]) => a.localeCompare(b));
  const a = nonEmpty(got);
  const b = nonEmpty(recorded);
  const ok = JSON.stringify(a) === JSON.stringify(b);
  const show = (e: Array<[string, number]>) => e.map(([db, n]) => `${db}=${n}`).join(' ') || 'none';
  return { name: 'keys', ok, detail: ok ? `${show(a)} as recorded at backup time` : `restored ${show(a)}, recorded at backup time ${show(b)}` };
}

/**
 * How far a restored dataset's memory (used_memory_dataset) may be from the recorded
 * one: a fraction of it, plus a floor for a small dataset's fixed costs. Values a restore
 * lost or truncated show here while the key counts still agree.
 */
export const MEMORY_TOLERANCE = { fraction: 0.25, floor: 1 << 20 };

/** The restored dataset's memory against the recorded one (see MEMORY_TOLERANCE). */
export function compareMemory(got: number, recorded: number): CheckResult {
  const slack = Math.max(MEMORY_TOLERANCE.floor, recorded * MEMORY_TOLERANCE.fraction);
  const ok = Math.abs(got - recorded) <= slack;
  const mib = (n: number) => `${(n / (1 << 20)).toFixed(1)} MiB`;
  return {
    name: 'memory',
    ok,
    detail: ok ? `${mib(got)} of data, ${mib(recorded)} at backup time` : `the restored data takes ${mib(got)}, at backup time ${mib(recorded)} (more than ${Math.round(MEMORY_TOLERANCE.fraction * 100)} % apart)`,
  };
}

/** used_memory_dataset of a server (INFO memory). */
export async function datasetMemoryOf(conn: RedisConnection): Promise<number | undefined> {
  const n = Number((await conn.info('memory')).get('used_memory_dataset'));
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** redis-check-rdb FILE (found on PATH unless named): ok, with the last line it printed. */
export function checkRdb(file: string, bin = 'redis-check-rdb'): Promise<CheckResult> {
  return new Promise((resolve, reject) => {
    execFile(bin, [file], { timeout: 30 * 60_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const lines = `${stdout}\n${stderr}`.split('\n').map((l) => l.replace(/^\[offset \d+\]\s*/, '').trim()).filter(Boolean);
      const last = lines[lines.length - 1] ?? '';
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new LifeboatError('RECOVERY_FAILED', `cannot run ${bin}`, { hint: 'install it (Debian: apt-get install redis-tools) or put it on PATH' }));
        return;
      }
      const ok = !err && /RDB looks OK/i.test(`${stdout}${stderr}`);
      resolve({ name: 'redis-check-rdb', ok, detail: ok ? 'RDB looks OK' : last.slice(0, 300) || `exit ${String((err as { code?: unknown } | null)?.code)}` });
    });
  });
}

/** The one-line RECOVERY_FAILED for the first failed check, or nothing when all passed. */
export function failedChecks(results: readonly CheckResult[]): LifeboatError | undefined {
  const bad = results.find((r) => !r.ok);
  if (!bad) return undefined;
  return new LifeboatError('RECOVERY_FAILED', `the restored data fails ${bad.name}: ${bad.detail}`, {
    hint: 'nothing was written; restore another time or snapshot, or check what the check expects',
  });
}
