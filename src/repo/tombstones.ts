/**
 * Tombstones of forgotten snapshots (format 2). Storage that refuses deletes still lets
 * a thief put objects back: an old snapshot uploaded again would return to listings,
 * to `latest`, to retention. `forget` (a full key) first writes
 * `forgotten/<snapshot id>.<epoch key id>.<tag>`, where the tag is an HMAC of the id
 * under that epoch's metadata key, then deletes the snapshot. Readers holding the
 * metadata keys leave out, and name, every snapshot a valid tombstone covers. The tag
 * is in the name, so checking costs one listing and no reads; a restricted key cannot
 * make one, so it cannot hide a snapshot this way. `prune --reseal` renames tombstones
 * of older epochs (src/repo/maintenance/reseal.ts).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { MasterKey } from '../codec/crypto.js';
import { isLifeboatError } from '../errors.js';
import { listAll, type Store } from '../storage/store.js';

const PREFIX = 'forgotten/';
const NAME = /^forgotten\/([0-9a-f]{64})\.([0-9a-f]{8})\.([0-9a-f]{64})$/;

function tag(macKey: Buffer, snapshotId: string): Buffer {
  return createHmac('sha256', macKey).update(`lifeboat forgotten\0${snapshotId}`).digest();
}

const hex8 = (keyId: number) => (keyId >>> 0).toString(16).padStart(8, '0');

/** The tombstone's name for a snapshot under the key's current epoch; undefined without a metadata key. */
export function tombstoneKey(key: MasterKey, snapshotId: string): string | undefined {
  return tombstoneKeyFor(key, key.keyId, snapshotId);
}

/** The tombstone's name under one epoch of the key; undefined when the key holds no metadata key for it. */
export function tombstoneKeyFor(key: MasterKey, keyId: number, snapshotId: string): string | undefined {
  const macKey = key.version === 2 ? key.epochs.get(keyId)?.macKey : undefined;
  if (!macKey) return undefined;
  return `${PREFIX}${snapshotId}.${hex8(keyId)}.${tag(macKey, snapshotId).toString('hex')}`;
}

/** Marks a snapshot as forgotten, before its object is deleted (format 2, full keys; otherwise nothing). */
export async function writeTombstone(store: Store, key: MasterKey, snapshotId: string): Promise<void> {
  const name = tombstoneKey(key, snapshotId);
  if (!name) return;
  try {
    await store.put(name, Buffer.alloc(0), { ifAbsent: true });
  } catch (err) {
    if (!isLifeboatError(err, 'ALREADY_EXISTS')) throw err;
  }
}

export interface Tombstone {
  key: string;
  snapshotId: string;
  keyId: number;
}

/**
 * The tombstones whose tag verifies with this key (an empty list for a key without
 * metadata keys: it cannot tell, and ignores them all).
 */
export async function readTombstones(store: Store, key: MasterKey): Promise<Tombstone[]> {
  if (key.version !== 2 || ![...key.epochs.values()].some((e) => e.macKey)) return [];
  const out: Tombstone[] = [];
  for (const o of await listAll(store, PREFIX)) {
    const m = NAME.exec(o.key);
    if (!m) continue;
    const keyId = Number.parseInt(m[2] as string, 16);
    const macKey = key.epochs.get(keyId)?.macKey;
    if (!macKey) continue;
    if (timingSafeEqual(tag(macKey, m[1] as string), Buffer.from(m[3] as string, 'hex'))) out.push({ key: o.key, snapshotId: m[1] as string, keyId });
  }
  return out;
}
