/**
 * Key slots: each password wraps the same random master key with a key derived by
 * scrypt. Passwords can be added, changed and removed without touching data. A slot
 * is `keys/<sha256 of its bytes>` holding plain JSON (KDF parameters, salt, who made
 * it, and the sealed master key).
 */
import { randomBytes, scrypt as scryptCb } from 'node:crypto';
import * as os from 'node:os';
import { promisify } from 'node:util';
import { LifeboatError, isLifeboatError } from '../errors.js';
import { decrypt, encrypt, masterKeyFrom, sha256, type MasterKey } from '../codec/crypto.js';
import { CODEC } from '../codec/compression.js';
import { listAll, type Store } from '../storage/store.js';
import { toHex } from '../util/bytes.js';

const scrypt = promisify(scryptCb) as (
  password: string,
  salt: Buffer,
  keylen: number,
  opts: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

export interface KdfParams {
  name: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
}

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

/**
 * scrypt N=2^15, r=8, p=1 (32 MiB, ~100 ms here): the parameters scrypt's authors
 * recommend for interactive logins. Tests may lower them with LIFEBOAT_TEST_KDF=fast.
 */
function defaultKdf(): Omit<KdfParams, 'salt'> {
  if (process.env.LIFEBOAT_TEST_KDF === 'fast') return { name: 'scrypt', N: 1024, r: 8, p: 1 };
  return { name: 'scrypt', N: 2 ** 15, r: 8, p: 1 };
}

/** scrypt parameters a reader accepts: N a power of two, at most 1 GiB of memory (128·N·r bytes), p ≤ 16. */
function sane(kdf: KdfParams | undefined): kdf is KdfParams {
  const ok = (n: unknown, max: number): n is number => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= max;
  return kdf !== undefined && kdf.name === 'scrypt' && ok(kdf.N, 2 ** 20) && kdf.N > 1 && (kdf.N & (kdf.N - 1)) === 0 && ok(kdf.r, 64) && ok(kdf.p, 16) && 128 * kdf.N * kdf.r <= 2 ** 30 && typeof kdf.salt === 'string';
}

async function derive(password: string, kdf: KdfParams): Promise<Buffer> {
  return scrypt(password, Buffer.from(kdf.salt, 'base64'), 32, {
    N: kdf.N,
    r: kdf.r,
    p: kdf.p,
    maxmem: 256 * kdf.N * kdf.r * kdf.p,
  });
}

export async function createKeySlot(store: Store, password: string, master: MasterKey, opts: { appendOnly?: boolean } = {}): Promise<string> {
  const kdf: KdfParams = { ...defaultKdf(), salt: randomBytes(32).toString('base64') };
  const wrapping = await derive(password, kdf);
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
  const raw = await store.get(key);
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
    // A damaged slot (or one whose KDF would take unbounded memory) must not stop the others; `check` names it.
    const slot = await readSlot(store, info.key).catch((err: unknown) => (isLifeboatError(err, 'CORRUPT') ? undefined : Promise.reject(err)));
    if (!slot || !sane(slot.kdf)) continue;
    const wrapping = await derive(password, slot.kdf);
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
    const slot = await readSlot(store, info.key);
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
