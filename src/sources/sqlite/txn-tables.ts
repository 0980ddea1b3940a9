/**
 * What each listed transaction touched: the database is rebuilt as of just before the
 * first of them (restore.ts, into a private scratch directory), then their frames are
 * laid over it one transaction at a time; before and after each, the pages it wrote
 * are mapped to their b-trees (btree-map.ts). A page belongs to the b-tree that owns
 * it after the transaction, or before it when the transaction freed it; the rows (or
 * index entries) a transaction added or removed are the cells on the pages it wrote,
 * after minus before.
 *
 * Memory: one segment and one page-owner array (4 bytes a page) at a time.
 */
import { closeSync, ftruncateSync, fstatSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Repository } from '../../repo/repository.js';
import { logSource } from './names.js';
import { transactionsAfter } from './history.js';
import { FRAME_HEADER_SIZE, frameInfo } from './wal.js';
import { comparePos, type Commit } from './segment.js';
import { sqliteRestore } from './restore.js';
import { entries, fileReader, ownerName, pageOwners, type PageOwners } from './btree-map.js';
import type { GenerationSpan, NumberedTxn } from './transactions.js';

const HEADER = { name: '(database header)', type: 'other' } as const;

export interface TouchedObject {
  name: string;
  type: 'table' | 'index' | 'free' | 'other';
  /** For an index, its table. */
  table?: string;
  pages: number;
  /** Rows (table) or entries (index) added minus removed. */
  delta: number;
}

export interface DescribedTxn extends NumberedTxn {
  objects: TouchedObject[];
  /** The tables it changed (an index's change counts for its table), by name. */
  tables: string[];
}

export async function describeTransactions(repo: Repository, name: string, g: GenerationSpan, txns: NumberedTxn[]): Promise<DescribedTxn[]> {
  const first = txns[0];
  const last = txns.at(-1);
  if (!first || !last) return [];
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-history-'));
  try {
    const file = path.join(scratch, 'before.db');
    await sqliteRestore(repo, { name, output: file, position: { generation: g.generation, position: first.before } });
    const fd = openSync(file, 'r+');
    try {
      const bySeq = new Map(txns.map((t) => [t.seq, t]));
      const out: DescribedTxn[] = [];
      let pageSize = 0;
      let owners: PageOwners | undefined;
      let dbPages = 0;
      const keep = (c: Commit) => comparePos(c, last.position) <= 0;
      let seqIdx = 0;
      for await (const r of transactionsAfter(repo, logSource(name), g.generation, first.before, g.names, keep, last.position)) {
        pageSize = r.pageSize;
        const frameSize = FRAME_HEADER_SIZE + pageSize;
        const start = (r.commits.at(-1) as Commit).end - r.frames.length;
        let begin = 0;
        for (const c of r.commits) {
          const frames = r.frames.subarray(begin, c.end - start);
          begin = c.end - start;
          if (!owners) {
            dbPages = Math.floor(fstatSync(fd).size / pageSize);
            owners = pageOwners(fileReader(fd, pageSize, dbPages), pageSize, dbPages);
          }
          const latest = new Map<number, number>();
          let newSize = dbPages;
          for (let o = 0; o + frameSize <= frames.length; o += frameSize) {
            const f = frameInfo(frames, o);
            latest.set(f.pgno, o);
            if (f.dbPages) newSize = f.dbPages;
          }
          const readBefore = fileReader(fd, pageSize, dbPages);
          const beforeEntries = new Map<number, { owner: ReturnType<typeof ownerName>; n: number }>();
          for (const p of latest.keys()) {
            const who = ownerName(owners, p);
            beforeEntries.set(p, { owner: who, n: entries(readBefore(p), p, who.type) });
          }
          for (const [p, o] of latest) writeSync(fd, frames, o + FRAME_HEADER_SIZE, pageSize, (p - 1) * pageSize);
          if (newSize < dbPages || newSize !== Math.floor(fstatSync(fd).size / pageSize)) ftruncateSync(fd, newSize * pageSize);
          dbPages = newSize;
          const after = pageOwners(fileReader(fd, pageSize, dbPages), pageSize, dbPages);
          const readAfter = fileReader(fd, pageSize, dbPages);
          const objects = new Map<string, TouchedObject>();
          const at = (who: ReturnType<typeof ownerName>) => {
            let o = objects.get(who.name);
            if (!o) objects.set(who.name, (o = { name: who.name, type: who.type, ...(who.table ? { table: who.table } : {}), pages: 0, delta: 0 }));
            return o;
          };
          for (const p of [...latest.keys()].sort((a, b) => a - b)) {
            const was = beforeEntries.get(p) as { owner: ReturnType<typeof ownerName>; n: number };
            const now = ownerName(after, p);
            const owner = now.type === 'table' || now.type === 'index' ? now : was.owner.type === 'table' || was.owner.type === 'index' ? was.owner : now;
            const n = entries(readAfter(p), p, now.type);
            // Page 1 is the database header too (freelist, counters): with the schema's rows
            // unchanged, that is what the transaction wrote there.
            if (p === 1 && n === was.n && owner.name === 'sqlite_schema') {
              at(HEADER).pages++;
              continue;
            }
            at(owner).pages++;
            at(was.owner).delta -= was.n;
            at(now).delta += n;
          }
          owners = after;
          const t = bySeq.get(txns[seqIdx]?.seq ?? -1);
          seqIdx++;
          if (!t || comparePos(t.position, c) !== 0) continue;
          const rank = { table: 0, index: 1, free: 2, other: 3 } as const;
          const list = [...objects.values()].filter((o) => o.pages > 0 || o.delta !== 0).sort((x, y) => rank[x.type] - rank[y.type] || x.name.localeCompare(y.name));
          const tables = [...new Set(list.filter((o) => o.type === 'table' || o.type === 'index').map((o) => o.table ?? o.name))].sort();
          out.push({ ...t, objects: list, tables });
        }
      }
      return out;
    } finally {
      closeSync(fd);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
