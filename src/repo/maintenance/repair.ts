/**
 * `lifeboat repair` for a repository on several destinations: every object one
 * destination lacks is copied from another that has it, so full redundancy returns
 * after a destination was down. Objects named by their SHA-256 (packs, indexes,
 * snapshots) are checked against their name before they are copied; others (config,
 * key slots, log files) are sealed and were checked by whoever wrote them, and are
 * copied as stored. Locks are never copied.
 */
import { LifeboatError } from '../../errors.js';
import { sha256 } from '../../codec/crypto.js';
import { toHex } from '../../util/bytes.js';
import { mapLimit } from '../../util/limit.js';
import type { Store } from '../../storage/store.js';

export interface RepairResult {
  /** Objects copied, per destination location. */
  copied: Record<string, number>;
  /** Objects no destination had a good copy of. */
  unrecoverable: string[];
}

const HASH_NAMED = /^(data\/[0-9a-f]{2}|index|snapshots)\/([0-9a-f]{64})$/;

export async function repairDestinations(stores: readonly Store[], opts: { dryRun?: boolean; onCopy?: (key: string, to: Store) => void } = {}): Promise<RepairResult> {
  if (stores.length < 2) {
    throw new LifeboatError('USAGE', 'repair needs a repository with several destinations', {
      hint: 'define one in lifeboat.yaml (repositories: NAME: stores: [...]) and pass --repo NAME',
    });
  }
  const held: Array<Set<string>> = [];
  for (const s of stores) {
    const keys = new Set<string>();
    for await (const o of s.list('')) if (!o.key.startsWith('locks/')) keys.add(o.key);
    held.push(keys);
  }
  const all = new Set<string>();
  for (const keys of held) for (const k of keys) all.add(k);
  const result: RepairResult = { copied: Object.fromEntries(stores.map((s) => [s.location, 0])), unrecoverable: [] };
  await mapLimit([...all], 8, async (key) => {
    const lacking = stores.filter((_, i) => !(held[i] as Set<string>).has(key));
    if (lacking.length === 0) return;
    const data = await goodCopy(key, stores.filter((_, i) => (held[i] as Set<string>).has(key)));
    if (!data) {
      result.unrecoverable.push(key);
      return;
    }
    for (const to of lacking) {
      if (!opts.dryRun) await to.put(key, data);
      result.copied[to.location] = (result.copied[to.location] ?? 0) + 1;
      opts.onCopy?.(key, to);
    }
  });
  return result;
}

/** The first copy that matches its name (for hash-named objects), or undefined. */
async function goodCopy(key: string, from: Store[]): Promise<Uint8Array | undefined> {
  const named = HASH_NAMED.exec(key);
  for (const s of from) {
    let data: Uint8Array;
    try {
      data = await s.get(key);
    } catch {
      continue; // that destination cannot serve it now; another may
    }
    if (!named || toHex(sha256(data)) === named[2]) return data;
  }
  return undefined;
}
