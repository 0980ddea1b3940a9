/**
 * Which table or index owns each page of a SQLite database image, read straight from
 * the file (https://www.sqlite.org/fileformat2.html#b_tree_pages): the schema b-tree
 * (root page 1) names every b-tree's root page; each b-tree is walked through its
 * interior pages only (all leaves of a b-tree are at the same depth, so one child's
 * header says whether a level holds leaves), and the freelist through its trunk
 * pages. A page none of them reaches is an overflow page (or a pointer-map page):
 * telling those apart would mean reading every leaf cell, which the history's
 * "which tables did this transaction touch" question does not need.
 *
 * The image is the backup's, so nothing here trusts it: page numbers outside the file,
 * loops and absurd depths end the walk for that tree instead of failing or hanging.
 * Memory: one Int32 per page (4 MiB for a 4 GiB database of 4 KiB pages) and the schema.
 */
import { readSync } from 'node:fs';

export interface BtreeObject {
  type: 'table' | 'index';
  name: string;
  /** The table an index belongs to (the table itself for a table). */
  table: string;
  root: number;
}

export interface PageOwners {
  pageSize: number;
  pages: number;
  objects: BtreeObject[];
  /** For page p at p - 1: index into objects, FREE, or UNREACHED. */
  owner: Int32Array;
}

export const FREE = -1;
export const UNREACHED = -2;
/** Deeper than any real b-tree (SQLite's own limit is 20 levels). */
const MAX_DEPTH = 40;

/** Reads one page (1-based); undefined past the end of the file. */
export type PageReader = (pgno: number) => Buffer | undefined;

export function fileReader(fd: number, pageSize: number, pages: number): PageReader {
  return (pgno) => {
    if (pgno < 1 || pgno > pages) return undefined;
    const buf = Buffer.alloc(pageSize);
    const n = readSync(fd, buf, 0, pageSize, (pgno - 1) * pageSize);
    return n === pageSize ? buf : undefined;
  };
}

/** The page owners of the image behind `read` (page size and count from the caller: the WAL knows them). */
export function pageOwners(read: PageReader, pageSize: number, pages: number): PageOwners {
  const owner = new Int32Array(pages).fill(UNREACHED);
  const objects: BtreeObject[] = [{ type: 'table', name: 'sqlite_schema', table: 'sqlite_schema', root: 1 }];
  const page1 = read(1);
  if (!page1) return { pageSize, pages, objects, owner };
  const usable = pageSize - (page1[20] ?? 0);
  // The schema first: its leaf cells name every other b-tree's root.
  const schemaLeaves: number[] = [];
  walk(read, 1, 0, pages, owner, schemaLeaves);
  for (const leaf of schemaLeaves) {
    const page = read(leaf);
    if (!page) continue;
    for (const row of leafRecords(page, leaf === 1 ? 100 : 0, usable)) {
      const [type, name, table, root] = row;
      if ((type === 'table' || type === 'index') && typeof name === 'string' && typeof root === 'number' && root > 1 && root <= pages) {
        objects.push({ type, name, table: typeof table === 'string' ? table : name, root });
      }
    }
  }
  for (let i = 1; i < objects.length; i++) walk(read, (objects[i] as BtreeObject).root, i, pages, owner);
  freelist(read, page1, pages, owner);
  return { pageSize, pages, objects, owner };
}

/** Marks every page of the b-tree at `root` as object `index`'s; collects its leaves when asked. */
function walk(read: PageReader, root: number, index: number, pages: number, owner: Int32Array, leaves?: number[]): void {
  let level = [root];
  for (let depth = 0; level.length > 0 && depth < MAX_DEPTH; depth++) {
    const fresh = level.filter((p) => p >= 1 && p <= pages && owner[p - 1] === UNREACHED);
    for (const p of fresh) owner[p - 1] = index;
    const first = fresh[0];
    if (first === undefined) return;
    const kind = read(first)?.[first === 1 ? 100 : 0];
    if (kind === 0x0d || kind === 0x0a) {
      leaves?.push(...fresh);
      return;
    }
    const next: number[] = [];
    for (const p of fresh) {
      const page = read(p);
      if (!page) continue;
      const h = p === 1 ? 100 : 0;
      if (page[h] !== 0x05 && page[h] !== 0x02) continue;
      const cells = page.readUInt16BE(h + 3);
      for (let i = 0; i < cells; i++) {
        const at = page.readUInt16BE(h + 12 + 2 * i);
        if (at + 4 <= page.length) next.push(page.readUInt32BE(at));
      }
      next.push(page.readUInt32BE(h + 8));
    }
    level = next;
  }
}

function freelist(read: PageReader, page1: Buffer, pages: number, owner: Int32Array): void {
  let trunk = page1.readUInt32BE(32);
  for (let seen = 0; trunk >= 1 && trunk <= pages && seen < pages; seen++) {
    if (owner[trunk - 1] !== UNREACHED) return; // a loop, or a page claimed twice: stop
    owner[trunk - 1] = FREE;
    const page = read(trunk);
    if (!page) return;
    const n = Math.min(page.readUInt32BE(4), (page.length - 8) / 4);
    for (let i = 0; i < n; i++) {
      const leaf = page.readUInt32BE(8 + 4 * i);
      if (leaf >= 1 && leaf <= pages && owner[leaf - 1] === UNREACHED) owner[leaf - 1] = FREE;
    }
    trunk = page.readUInt32BE(0);
  }
}

/** A SQLite varint at `at`: [value, length]. */
function varint(buf: Buffer, at: number): [number, number] {
  let v = 0;
  for (let i = 0; i < 8; i++) {
    const b = buf[at + i];
    if (b === undefined) return [v, i + 1];
    v = v * 128 + (b & 0x7f);
    if (b < 0x80) return [v, i + 1];
  }
  const last = buf[at + 8] ?? 0;
  return [v * 256 + last, 9];
}

/**
 * The first columns of each record on a table leaf page, as far as they lie in the
 * cell's local payload (the schema's type, name, tbl_name and rootpage always do:
 * they come before the SQL text, and the local part holds hundreds of bytes).
 */
function leafRecords(page: Buffer, h: number, usable: number): Array<Array<string | number | null>> {
  if (page[h] !== 0x0d) return [];
  const out: Array<Array<string | number | null>> = [];
  const cells = page.readUInt16BE(h + 3);
  const maxLocal = usable - 35;
  for (let i = 0; i < cells; i++) {
    let at = page.readUInt16BE(h + 8 + 2 * i);
    const [size, a] = varint(page, at);
    at += a;
    at += varint(page, at)[1]; // rowid
    const end = Math.min(page.length, at + Math.min(size, maxLocal));
    const [headerLen, b] = varint(page, at);
    let hp = at + b;
    let body = at + headerLen;
    const row: Array<string | number | null> = [];
    while (hp < at + headerLen && row.length < 4) {
      const [t, c] = varint(page, hp);
      hp += c;
      const len = t >= 12 ? Math.floor((t - 12) / 2) : [0, 1, 2, 3, 4, 6, 8, 8, 0, 0][t] ?? 0;
      if (body + len > end) break;
      if (t >= 13 && t % 2 === 1) row.push(page.toString('utf8', body, body + len));
      else if (t >= 1 && t <= 6) row.push(page.readIntBE(body, Math.min(len, 6)));
      else if (t === 8) row.push(0);
      else if (t === 9) row.push(1);
      else row.push(null);
      body += len;
    }
    out.push(row);
  }
  return out;
}

/** What a page is, for people: the table or index name, or what kind of unowned page. */
export function ownerName(o: PageOwners, pgno: number): { name: string; type: 'table' | 'index' | 'free' | 'other'; table?: string } {
  const i = pgno >= 1 && pgno <= o.pages ? (o.owner[pgno - 1] as number) : UNREACHED;
  if (i === FREE) return { name: '(freelist)', type: 'free' };
  if (i === UNREACHED) return { name: '(overflow/other)', type: 'other' };
  const obj = o.objects[i] as BtreeObject;
  return { name: obj.name, type: obj.type, table: obj.table };
}

/**
 * Entries a b-tree page holds for its owner: rows on a table leaf, keys on any index
 * page (interior index cells carry keys too); 0 for anything else. Summed over the
 * pages a transaction wrote, before and after, the difference is the rows it added
 * or removed in that table (splits and merges move cells between pages it wrote).
 */
export function entries(page: Buffer | undefined, pgno: number, type: 'table' | 'index' | 'free' | 'other'): number {
  if (!page) return 0;
  const h = pgno === 1 ? 100 : 0;
  const kind = page[h];
  if (type === 'table' && kind === 0x0d) return page.readUInt16BE(h + 3);
  if (type === 'index' && (kind === 0x0a || kind === 0x02)) return page.readUInt16BE(h + 3);
  return 0;
}
