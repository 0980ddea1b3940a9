import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BlobIndex } from '../../src/repo/index/blob-index.js';
import { BLOB_DATA, BLOB_TREE } from '../../src/repo/format.js';
import { encodeEntries, type PackEntry } from '../../src/repo/pack/pack.js';

describe('BlobIndex', () => {
  it('finds every entry after growing, keeps the first location of duplicates', () => {
    const idx = new BlobIndex(16);
    const pack = idx.addPack(randomBytes(32));
    const ids = Array.from({ length: 20_000 }, () => randomBytes(32));
    ids.forEach((id, i) => expect(idx.add(id, { packIndex: pack, offset: i, length: i + 1, rawLength: i + 2, type: i % 2 ? BLOB_TREE : BLOB_DATA })).toBe(true));
    expect(idx.add(ids[5]!, { packIndex: pack, offset: 999, length: 1, rawLength: 1, type: BLOB_DATA })).toBe(false);
    expect(idx.size).toBe(ids.length);
    ids.forEach((id, i) => expect(idx.get(id)).toEqual({ packIndex: pack, offset: i, length: i + 1, rawLength: i + 2, type: i % 2 ? BLOB_TREE : BLOB_DATA }));
    expect(idx.has(randomBytes(32))).toBe(false);
    let n = 0;
    idx.forEach(() => n++);
    expect(n).toBe(ids.length);
  });

  it('loads raw index entries (addEntries) to exactly what add() builds, copies of a blob in several packs included', () => {
    const packs = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const ids = Array.from({ length: 5000 }, () => randomBytes(32));
    // Pack p holds ids p*2000 .. p*2000+2999: packs overlap by 1000 ids, so copies exist.
    const entries = packs.map((_, p): PackEntry[] =>
      ids.slice(p * 2000, p * 2000 + 3000).map((id, i) => ({ type: i % 3 ? BLOB_DATA : BLOB_TREE, id, offset: i * 7, length: i + 1, rawLength: 0xfffffff0 - i })),
    );
    const byAdd = new BlobIndex(16);
    const byEntries = new BlobIndex(16);
    packs.forEach((packId, p) => {
      const h = byAdd.addPack(packId);
      for (const e of entries[p]!) byAdd.add(e.id, { packIndex: h, offset: e.offset, length: e.length, rawLength: e.rawLength, type: e.type });
      byEntries.addEntries(byEntries.addPack(packId), encodeEntries(entries[p]!));
    });
    expect(byEntries.size).toBe(ids.length);
    for (const id of ids) {
      expect(byEntries.get(id)).toEqual(byAdd.get(id));
      expect(byEntries.locations(id)).toEqual(byAdd.locations(id));
    }
    expect(byEntries.locations(ids[2500]!)).toHaveLength(2);
    expect(byEntries.has(randomBytes(32))).toBe(false);
  });

  it('costs at most 128 bytes per blob, off the JS heap', () => {
    const idx = new BlobIndex();
    const p = idx.addPack(randomBytes(32));
    const n = 100_000;
    for (let i = 0; i < n; i++) idx.add(randomBytes(32), { packIndex: p, offset: 0, length: 1, rawLength: 1, type: BLOB_DATA });
    expect(idx.byteSize / n).toBeLessThanOrEqual(128);
  });

  it('names reserved packs once their id is known', () => {
    const idx = new BlobIndex();
    const h = idx.reservePack();
    const id = randomBytes(32);
    expect(idx.hasPack(id.toString('hex'))).toBe(false);
    idx.setPackId(h, id);
    expect(idx.packId(h).equals(id)).toBe(true);
    expect(idx.hasPack(id.toString('hex'))).toBe(true);
  });

  it('prefers a live copy over one in a retiring pack, in either order, and does not deduplicate against retiring packs', () => {
    const id = Buffer.alloc(32, 7);
    const loc = (packIndex: number) => ({ packIndex, offset: 0, length: 1, rawLength: 1, type: 0 as const });
    for (const order of ['retiring first', 'live first']) {
      const idx = new BlobIndex();
      const old = Buffer.alloc(32, 1);
      const fresh = Buffer.alloc(32, 2);
      const add = (pack: Buffer, retire: boolean) => {
        const h = idx.addPack(pack);
        if (retire) idx.retirePack(pack.toString('hex'));
        idx.add(id, loc(h));
        return h;
      };
      if (order === 'retiring first') {
        add(old, true);
        expect(idx.has(id)).toBe(false); // only in a retiring pack: a backup stores it again
        const h = add(fresh, false);
        expect(idx.get(id)?.packIndex).toBe(h);
      } else {
        const h = add(fresh, false);
        add(old, true);
        expect(idx.get(id)?.packIndex).toBe(h);
      }
      expect(idx.has(id)).toBe(true);
      expect(idx.size).toBe(1);
    }
  });
});
