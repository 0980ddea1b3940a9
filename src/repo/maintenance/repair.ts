/**
 * `lifeboat repair` for a repository on several destinations: every object one
 * destination lacks is copied from another that has it, so full redundancy returns
 * after a destination was down; a copy of a pack, index file, key slot or retiring
 * list whose size differs from the good copy's (cut short) is replaced. Only a copy
 * that authenticates is copied (see `authenticator`): a damaged or forged object on
 * one destination never spreads to the others. Objects that are no part of a
 * repository, and locks, are never copied.
 */
import { createPrivateKey } from 'node:crypto';
import { openSession } from '../sessions.js';
import { LifeboatError } from '../../errors.js';
import { sha256, unseal, type SealContext } from '../../codec/crypto.js';
import { tombstoneKeyFor } from '../tombstones.js';
import { keys } from '../format.js';
import { CONFIG_COPY } from '../config-copy.js';
import { MAX_INDEX_FILE, MAX_LOG_FILE, MAX_PACK_LIST, MAX_RECORD } from '../limits.js';
import { parsePackHeader } from '../pack/pack.js';
import type { Repository } from '../repository.js';
import { toHex } from '../../util/bytes.js';
import { mapLimit } from '../../util/limit.js';
import type { Store } from '../../storage/store.js';

export interface RepairResult {
  /** Objects copied, per destination location. */
  copied: Record<string, number>;
  /** Objects no destination had a good copy of. */
  unrecoverable: string[];
  /** Objects that are no part of a repository (nothing can authenticate them): not copied. */
  foreign: string[];
}

/** Whether `data` is a genuine copy of the object `key`; false for what is no part of a repository. */
export type Authenticator = (key: string, data: Uint8Array) => boolean;

const HASH_NAMED = /^(data\/[0-9a-f]{2}|index|snapshots)\/([0-9a-f]{64})$/;

export async function repairDestinations(stores: readonly Store[], opts: { authenticate: Authenticator; knows: (key: string) => boolean; dryRun?: boolean; onCopy?: (key: string, to: Store) => void }): Promise<RepairResult> {
  if (stores.length < 2) {
    throw new LifeboatError('USAGE', 'repair needs a repository with several destinations', {
      hint: 'define one in lifeboat.yaml (repositories: NAME: stores: [...]) and pass --repo NAME',
    });
  }
  // Each destination's objects with their sizes.
  const held: Array<Map<string, number>> = [];
  for (const s of stores) {
    const sizes = new Map<string, number>();
    for await (const o of s.list('')) if (!o.key.startsWith('locks/')) sizes.set(o.key, o.size);
    held.push(sizes);
  }
  const all = new Set<string>();
  for (const sizes of held) for (const k of sizes.keys()) all.add(k);
  const result: RepairResult = { copied: Object.fromEntries(stores.map((s) => [s.location, 0])), unrecoverable: [], foreign: [] };
  await mapLimit([...all], 8, async (key) => {
    const has = (i: number) => held[i]?.has(key) ?? false;
    // An object named by its hash never changes: copies of different sizes mean one
    // is cut short (an upload the server took part of, a truncated file), which reads
    // pass over while another copy is good, so nothing else would find it.
    // (Not snapshots: format 2 names one by an HMAC of its manifest, and re-sealing
    // rewrites it under the same name.)
    const immutable = /^(data\/[0-9a-f]{2}|index|keys|prune)\/[0-9a-f]{64}$/.test(key);
    const sizesDiffer = () => new Set(held.flatMap((h) => (h.has(key) ? [h.get(key)] : []))).size > 1;
    if (stores.every((_, i) => has(i)) && !(immutable && sizesDiffer())) return;
    if (!opts.knows(key)) {
      result.foreign.push(key);
      return;
    }
    const data = await goodCopy(key, stores.filter((_, i) => has(i)), opts.authenticate);
    if (!data) {
      result.unrecoverable.push(key);
      return;
    }
    const lacking = stores.filter((_, i) => !has(i) || (immutable && held[i]?.get(key) !== data.length));
    for (const to of lacking) {
      if (!opts.dryRun) await to.put(key, data);
      result.copied[to.location] = (result.copied[to.location] ?? 0) + 1;
      opts.onCopy?.(key, to);
    }
  });
  return result;
}

/** The first copy that authenticates, or undefined. */
async function goodCopy(key: string, from: Store[], authenticate: Authenticator): Promise<Uint8Array | undefined> {
  for (const s of from) {
    let data: Uint8Array;
    try {
      data = await s.get(key);
    } catch {
      continue; // that destination cannot serve it now; another may
    }
    if (authenticate(key, data)) return data;
  }
  return undefined;
}

/** Whether a key is one a repository holds (everything else is left where it is). */
export function isRepositoryKey(key: string): boolean {
  return (
    key === keys.config ||
    key === CONFIG_COPY ||
    key === keys.verified ||
    HASH_NAMED.test(key) ||
    /^(keys|prune)\/[0-9a-f]{64}$/.test(key) ||
    /^drills\/[^/]+$/.test(key) ||
    /^keyring\/\d{10}$/.test(key) ||
    /^forgotten\/[0-9a-f]{64}\.[0-9a-f]{8}\.[0-9a-f]{64}$/.test(key) ||
    /^sessions\/[0-9a-f]{8}$/.test(key) ||
    /^logs\/.+/.test(key)
  );
}

/**
 * How `repo` authenticates each kind of object: the config by its sealed copy (or, in
 * a repository without one, by parsing), key slots and packs by their SHA-256 names
 * (packs also by their sealed header), every sealed object by opening it within its
 * bound (src/repo/limits.ts).
 */
export function authenticator(repo: Pick<Repository, 'key' | 'keyring'>, configCopy: Buffer | undefined): Authenticator {
  const recipient = repo.keyring?.payload.writeRecipient?.privateKey;
  const opens = (data: Uint8Array, what: string, ctx: SealContext, max: number): boolean => {
    try {
      unseal(repo.key, data, what, ctx, max);
      return true;
    } catch {
      return false;
    }
  };
  return (key, data) => {
    // Format 2 names a snapshot by an HMAC of its manifest, not the hash of its bytes.
    const named = (repo.key.version === 2 && key.startsWith('snapshots/') && data[0] === 2 ? null : HASH_NAMED.exec(key)) ?? /^(keys|prune)\/([0-9a-f]{64})$/.exec(key);
    if (named && toHex(sha256(data)) !== named[2]) return false;
    // A tombstone is empty and authenticated by the tag in its name (src/repo/tombstones.ts).
    if (key.startsWith('forgotten/')) {
      const m = /^forgotten\/([0-9a-f]{64})\.[0-9a-f]{8}\.[0-9a-f]{64}$/.exec(key);
      return data.length === 0 && m !== null && [...repo.key.epochs.keys()].some((id) => tombstoneKeyFor(repo.key, id, m[1] as string) === key);
    }
    if (key.startsWith('keyring/')) {
      // A generation's grants open only with each slot's own secret: its shape and name are what can be checked here.
      try {
        const g = JSON.parse(Buffer.from(data).toString('utf8')) as { version?: unknown; generation?: unknown };
        return g.version === 2 && key === keys.keyring(Number(g.generation));
      } catch {
        return false;
      }
    }
    if (key === keys.config) {
      if (configCopy) return configCopy.equals(Buffer.from(data));
      try {
        JSON.parse(Buffer.from(data).toString('utf8'));
        return true;
      } catch {
        return false;
      }
    }
    if (key.startsWith('keys/')) return true; // named by its hash: checked above
    if (key.startsWith('sessions/')) {
      // A write-only client's session key: it opens with the write recipient, which full keys hold.
      if (!recipient) return false;
      try {
        openSession(key, data, createPrivateKey({ key: Buffer.from(recipient, 'base64'), format: 'der', type: 'pkcs8' }));
        return true;
      } catch {
        return false;
      }
    }
    if (key.startsWith('data/')) {
      try {
        parsePackHeader(repo.key, data, data.length, key);
        return true;
      } catch {
        return false;
      }
    }
    if (key.startsWith('index/')) return opens(data, key, { kind: 'index' }, MAX_INDEX_FILE);
    if (key.startsWith('logs/')) return opens(data, key, { kind: 'log', name: key }, MAX_LOG_FILE);
    if (key.startsWith('prune/')) return opens(data, key, { kind: 'prune' }, MAX_PACK_LIST);
    if (key.startsWith('state/')) return opens(data, key, { kind: 'state', name: key }, key === keys.verified ? MAX_PACK_LIST : MAX_RECORD);
    if (key.startsWith('drills/')) return opens(data, key, { kind: 'drill', name: key }, MAX_RECORD);
    if (key.startsWith('snapshots/')) return opens(data, key, data[0] === 2 ? { kind: 'snapshot', name: key } : { kind: 'snapshot' }, MAX_RECORD);
    return false; // not part of a repository
  };
}
