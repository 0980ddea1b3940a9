/**
 * The edges of the look at PostgreSQL transactions that ended inside a group's hold
 * (src/engine/group/pg-writes.ts) that no server is needed for: the look itself runs
 * against a real cluster and a real autovacuum in test/integration/group.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { writesIn } from '../../src/engine/group/pg-writes.js';

const nothingAsked = () => Promise.reject(new Error('no query expected'));

describe('writesIn', () => {
  it('reports without a look what it cannot look at: an id that went back, too many ended', async () => {
    expect(await writesIn({ from: '900', to: '800', ended: [] }, nothingAsked, nothingAsked)).toBe('the next transaction id went back (900 → 800): not the server the point was made on');
    expect(await writesIn({ from: '1000', to: '1257', ended: [] }, nothingAsked, nothingAsked)).toBe('257 transactions ended after its restore point (next transaction id 1000 → 1257)');
  });

  it('counts nothing when every id in the window was still running at the check', async () => {
    expect(await writesIn({ from: '1000', to: '1002', ended: [] }, nothingAsked, nothingAsked)).toBeUndefined();
  });
});
