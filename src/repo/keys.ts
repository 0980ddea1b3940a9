/**
 * Key slots: each password wraps the same random master key with a key derived by
 * scrypt. Passwords can be added, changed and removed without touching data. A slot
 * is `keys/<sha256 of its bytes>` holding plain JSON (KDF parameters, salt, who made
 * it, and the sealed master key).
 */
import * as os from 'node:os';
import { LifeboatError, isLifeboatError } from '../errors.js';
import { decrypt, encrypt, masterKeyFrom, sha256, type MasterKey } from '../codec/crypto.js';
import { CODEC } from '../codec/compression.js';
import { listAll, type Store } from '../storage/store.js';
import { assertUsablePassword, checkKdf, defaultKdf, deriveKey, type KdfParams } from './keyring.js';
import { toHex } from '../util/bytes.js';

export interface KeySlot {
  version: 1;
  kdf: KdfParams;
  created: string;
  hostname: string;
  username: string;
  /** Sealed {encKey, idKey} JSON, base64. */
  master: string;
  /** A slot for backup hosts: clients opening with it may add but never delete or overwrite. */
  appendOnly?: boolean;
}

export interface KeySlotInfo {
  id: string;
  appendOnly: boolean;
  created: string;
  hostname: string;
  username: string;
}

export async function createKeySlot(store: Store, password: string, master: MasterKey, opts: { appendOnly?: boolean } = {}): Promise<string> {
  assertUsablePassword(password);
  const kdf = defaultKdf();
  const wrapping = await deriveKey(password, kdf);
  const secret = Buffer.from(
    JSON.stringify({ encKey: master.encKey.toString('base64'), idKey: master.idKey.toString('base64') }),
  );
  const slot: KeySlot = {
    version: 1,
    kdf,
    created: new Date().toISOString(),
    hostname: os.hostname(),
    username: os.userInfo().username,
    master: encrypt(wrapping, 0, CODEC.none, secret).toString('base64'),
    ...(opts.appendOnly ? { appendOnly: true } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(slot, null, 2));
  const id = toHex(sha256(bytes));
  await store.put(`keys/${id}`, bytes, { ifAbsent: true });
  return id;
}

async function readSlot(store: Store, key: string): Promise<KeySlot> {
  // A slot is named by the SHA-256 of its bytes: that is the check a retrying store reads again on.
  const name = key.slice(key.lastIndexOf('/') + 1);
  const raw = await store.get(key, undefined, { verify: (d) => toHex(sha256(d)) === name });
  try {
    return JSON.parse(Buffer.from(raw).toString('utf8')) as KeySlot;
  } catch (err) {
    throw new LifeboatError('CORRUPT', `key slot ${key} is not valid JSON`, { cause: err });
  }
}

/** Tries every key slot; returns the master key and the id of the slot that opened. */
export async function openWithPassword(store: Store, password: string): Promise<{ master: MasterKey; slotId: string; appendOnly: boolean }> {
  const slots = await listAll(store, 'keys/');
  if (slots.length === 0) {
    throw new LifeboatError('CORRUPT', `${store.location}: repository has no key slots`, {
      hint: 'the keys/ folder is missing; restore it from another copy of the repository',
    });
  }
  for (const info of slots) {
    let slot: KeySlot;
    try {
      slot = await readSlot(store, info.key);
      // Format 2 slots (a migration under way) and damaged ones never block a password.
      if (slot.version !== 1 || typeof slot.master !== 'string') continue;
    } catch (err) {
      if (isLifeboatError(err, 'CORRUPT') || isLifeboatError(err, 'NOT_FOUND')) continue;
      throw err;
    }
    let wrapping: Buffer;
    try {
      wrapping = await deriveKey(password, checkKdf(slot.kdf, info.key));
    } catch (err) {
      if (isLifeboatError(err, 'CORRUPT')) continue;
      throw err;
    }
    try {
      const [, secret] = decrypt(wrapping, 0, Buffer.from(slot.master, 'base64'), info.key);
      const parsed = JSON.parse(secret.toString('utf8')) as { encKey: string; idKey: string };
      return {
        master: masterKeyFrom(Buffer.from(parsed.encKey, 'base64'), Buffer.from(parsed.idKey, 'base64')),
        slotId: info.key.slice('keys/'.length),
        appendOnly: slot.appendOnly === true,
      };
    } catch (err) {
      if (!isLifeboatError(err, 'CORRUPT')) throw err;
    }
  }
  throw new LifeboatError('WRONG_PASSWORD', 'wrong password: no key slot of this repository opens with it', {
    hint: 'check --password-file / LIFEBOAT_PASSWORD; `lifeboat key list` shows the slots',
  });
}

export async function listKeySlots(store: Store): Promise<KeySlotInfo[]> {
  const out: KeySlotInfo[] = [];
  for (const info of await listAll(store, 'keys/')) {
    const slot = await readSlot(store, info.key).catch((err: unknown) => {
      if (isLifeboatError(err, 'CORRUPT') || isLifeboatError(err, 'NOT_FOUND')) return undefined;
      throw err;
    });
    if (!slot) continue;
    out.push({
      id: info.key.slice('keys/'.length),
      appendOnly: slot.appendOnly === true,
      created: slot.created,
      hostname: slot.hostname,
      username: slot.username,
    });
  }
  return out.sort((a, b) => a.created.localeCompare(b.created));
}
