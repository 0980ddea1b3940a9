/**
 * The stretches of time a PostgreSQL point-in-time restore can reach
 * (engine/window.ts): from each base backup on production's history (timelines.ts, the
 * chain `pg restore` recovers along) as far as the WAL after its start is unbroken,
 * archived or streamed. A recovery to a time replays commits up to it, so a stretch
 * ends at the newest commit in the last unbroken segment, read with `pg_waldump`
 * (segments carry no time of their own); one segment missing ends it with a gap.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import type { Repository } from '../../repo/repository.js';
import type { KindWindow, LogStretch } from '../../engine/window.js';
import { logSource, streamSource } from './names.js';
import { requirePgPoint } from './point.js';
import { backupOnChain, backupRefs, chainFor, gatherTimelines, productionHistory, type ChainLink } from './timelines.js';
import { parseWalName, segmentName } from './wal.js';

/** Segments read backwards from a stretch's end looking for a commit (an idle server's last ones may hold none). */
const MAX_BACK = 4;

interface Held {
  source: string;
  dir: string;
  file: string;
  streamed: boolean;
}

export async function pgWindow(repo: Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>, name: string): Promise<KindWindow> {
  const snaps = (await repo.listSnapshots()).filter((s) => s.source.kind === 'postgres' && s.source.name === name && s.consistency);
  const backups = backupRefs(snaps, name);
  const consistentAt = new Map(backups.map((b) => [b.id, Date.parse(b.stopTime)]));
  if (backups.length === 0) return { stretches: [], consistentAt };
  const newest = snaps.reduce((m, s) => (Date.parse(s.time) > Date.parse(m.time) ? s : m));
  const point = requirePgPoint(newest);
  const segSize = point.walSegSize || 16 * 1024 * 1024;
  const seg = BigInt(segSize);
  const facts = await gatherTimelines(repo, name, segSize);
  const chain = chainFor(facts, productionHistory(facts, backups, segSize));
  // Every WAL segment file held, by timeline and segment number (whole ones win over a partial).
  const held = new Map<string, Held>();
  for (const [source, streamed] of [[logSource(name), false], [streamSource(name), true]] as const) {
    for (const l of await repo.listLogs(source)) {
      let w;
      try {
        w = parseWalName(l.file, segSize);
      } catch {
        continue;
      }
      if (w.segno === undefined || (w.kind !== 'segment' && w.kind !== 'partial')) continue;
      const key = `${w.timeline}/${w.segno}`;
      if (w.kind === 'partial' && held.has(key)) continue;
      held.set(key, { source, dir: l.timeline, file: l.file, streamed });
    }
  }
  // The segment holding `segno` on the chain: the newest timeline of the chain whose range includes it.
  const onChain = (segno: bigint): Held | undefined => {
    for (let i = chain.length - 1; i >= 0; i--) {
      const link = chain[i] as ChainLink;
      const startSeg = i === 0 ? 0n : ((chain[i - 1] as ChainLink).until ?? 0n) / seg;
      if (segno < startSeg || (link.until !== undefined && segno > link.until / seg)) continue;
      const h = held.get(`${link.timeline}/${segno}`);
      if (h) return h;
    }
    return undefined;
  };
  const newestHeld = [...held.keys()].map((k) => BigInt(k.split('/')[1] as string)).reduce((m, s) => (s > m ? s : m), -1n);
  const notes: string[] = [];
  const endTimes = new Map<bigint, number | undefined>();
  const waldump = path.join(`/usr/lib/postgresql/${point.pgMajor}/bin`, 'pg_waldump');
  const stretches: LogStretch[] = [];
  for (const b of backups) {
    if (!backupOnChain(chain, b)) continue;
    const from = Date.parse(b.stopTime);
    let s = b.startLsn / seg;
    let last: bigint | undefined;
    while (onChain(s)) last = s++;
    if (last === undefined || last < b.stopLsn / seg) {
      stretches.push({ log: 'wal-archive', from, to: from, base: b.id, generation: `timeline ${b.timeline}`, endsBecause: `WAL segment ${segmentName(b.timeline, s, segSize)}, which this base backup needs, is not in the repository` });
      continue;
    }
    if (!endTimes.has(last)) endTimes.set(last, existsSync(waldump) ? await lastCommitBefore(repo, last, onChain, waldump) : undefined);
    const end = endTimes.get(last);
    if (end === undefined && !existsSync(waldump)) notes.push(`${waldump} not found: the WAL's commit times cannot be read, so the window ends at the base backups`);
    const lastHeld = onChain(last) as Held;
    const missing = s <= newestHeld;
    stretches.push({
      log: lastHeld.streamed ? 'wal-stream' : 'wal-archive',
      from,
      to: Math.max(from, end ?? from),
      base: b.id,
      generation: `timeline ${parseWalName(lastHeld.file.replace(/\.partial$/, ''), segSize).timeline}`,
      ...(missing ? { endsBecause: `WAL segment ${segmentName(chain.at(-1)?.timeline ?? b.timeline, s, segSize)} is missing: recovery cannot replay past it` } : {}),
    });
  }
  // WAL stored past where every stretch stops (a segment missing before it): how far it goes, for the gap.
  const reached = stretches.reduce((m, st) => Math.max(m, st.to), -Infinity);
  let storedUntil: number | undefined;
  if (stretches.some((st) => st.endsBecause !== undefined) && onChain(newestHeld) && existsSync(waldump)) {
    const t = await lastCommitBefore(repo, newestHeld, onChain, waldump);
    if (t !== undefined && t > reached) storedUntil = t;
  }
  return { stretches, consistentAt, notes: [...new Set(notes)], ...(storedUntil !== undefined ? { storedUntil } : {}) };
}

/** The newest commit time in segment `last` or the few before it, or undefined when none holds one. */
async function lastCommitBefore(repo: Pick<Repository, 'getLog'>, last: bigint, onChain: (s: bigint) => Held | undefined, waldump: string): Promise<number | undefined> {
  for (let s = last, n = 0; s >= 0n && n < MAX_BACK; s--, n++) {
    const h = onChain(s);
    if (!h) return undefined;
    const data = await repo.getLog(h.source, h.dir, h.file);
    if (!data) continue;
    const t = await newestCommit(data, h.file.replace(/\.partial$/, ''), waldump);
    if (t !== undefined) return t;
  }
  return undefined;
}

/**
 * The newest COMMIT record's time in one segment, from `pg_waldump --rmgr=Transaction`
 * (its lines are read as they come: a busy segment holds hundreds of thousands). A
 * partial segment ends in zeros, where pg_waldump stops with an error after printing
 * what it read: the records before are still good.
 */
async function newestCommit(data: Buffer, file: string, waldump: string): Promise<number | undefined> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-window-'));
  try {
    writeFileSync(path.join(dir, file), data, { mode: 0o600 });
    const child = spawn(waldump, ['--rmgr=Transaction', '--path', dir, file], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' } });
    let newest: number | undefined;
    const re = /desc: COMMIT(?:_PREPARED)? (\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d+)? UTC/;
    const lines = createInterface({ input: child.stdout });
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    child.once('error', () => {});
    for await (const line of lines) {
      const m = re.exec(line);
      if (!m) continue;
      // Rounded up to the millisecond: a recovery to the stretch's end must include this commit.
      const frac = (m[3] ?? '.').slice(1).padEnd(6, '0');
      const t = Date.parse(`${m[1]}T${m[2]}Z`) + Math.ceil(Number(frac) / 1000);
      if (Number.isFinite(t) && (newest === undefined || t > newest)) newest = t;
    }
    await closed;
    return newest;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
