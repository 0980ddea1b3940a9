/**
 * Session keys of write-only clients (format 2, docs/format.md "Write-only slots").
 *
 * A write-only key slot holds no epoch key: it could read back everything sealed under
 * one. Instead each run makes a random 32-byte session key S, wraps S to the
 * repository's write recipient (an X25519 public key whose private half only full
 * grants hold) and stores it as `sessions/<key id of S, 8 hex>` before sealing
 * anything with S. Everything the run writes is sealed with S as its epoch key and
 * carries no metadata tag (the client holds no metadata key), so full readers see it
 * as untrusted, like an append-only client's. Full readers unwrap every session object
 * when they open and read with S as one more epoch; `prune --reseal` re-seals what S
 * sealed under the current epoch and then deletes the session object.
 *
 * The wrap is the one grants use: ephemeral X25519, HKDF-SHA256, AES-256-GCM, with the
 * object's name in the associated data, so a session object renamed (to pass one key
 * off as another) does not open.
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import * as os from 'node:os';
import { LifeboatError, isLifeboatError } from '../errors.js';
import { decrypt, encrypt, keyIdOf, type EpochKey, type MasterKey } from '../codec/crypto.js';
import { CODEC } from '../codec/compression.js';
import { listAll, type Store } from '../storage/store.js';
import type { Warn } from './keyring.js';

/** Session objects are small JSON; anything larger is junk and is not read. */
const MAX_SESSION_BYTES = 4096;

export const SESSIONS_PREFIX = 'sessions/';

export function sessionKeyName(keyId: number): string {
  return `${SESSIONS_PREFIX}${keyId.toString(16).padStart(8, '0')}`;
}

interface SessionObject {
  version: 2;
  created: string;
  hostname: string;
  /** The write slot whose client made it (informational). */
  slot: string;
  /** Ephemeral X25519 public key, SPKI DER, base64. */
  epk: string;
  /** Format 2 envelope (key id 0, kind `keyring`, name the object's key) of the 32 bytes of S. */
  box: string;
}

function wrapKey(shared: Buffer, name: string): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.from('lifeboat session'), `lifeboat session\0${name}`, 32));
}

/** A fresh session key for a write-only client: version 2, no metadata key, its own epoch. */
export function newSessionKey(p: { idKey: string }): MasterKey {
  const encKey = randomBytes(32);
  const keyId = keyIdOf(encKey);
  const epoch: EpochKey = { encKey, session: true };
  return { version: 2, encKey, idKey: Buffer.from(p.idKey, 'base64'), keyId, macKey: undefined, epochs: new Map([[keyId, epoch]]) };
}

/** The object that hands `key`'s session key to full readers: its store key and bytes. */
export function sessionObject(key: MasterKey, recipientPublicKey: string, slot: string): { name: string; bytes: Buffer } {
  const name = sessionKeyName(key.keyId);
  const eph = generateKeyPairSync('x25519');
  const recipient = createPublicKey({ key: Buffer.from(recipientPublicKey, 'base64'), format: 'der', type: 'spki' });
  const k = wrapKey(diffieHellman({ privateKey: eph.privateKey, publicKey: recipient }), name);
  const box = encrypt(k, 0, CODEC.none, key.encKey, { kind: 'keyring', name });
  const obj: SessionObject = {
    version: 2,
    created: new Date().toISOString(),
    hostname: os.hostname(),
    slot,
    epk: eph.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    box: box.toString('base64'),
  };
  return { name, bytes: Buffer.from(JSON.stringify(obj)) };
}

/** Opens one session object; CORRUPT when it is damaged, forged or renamed. */
export function openSession(name: string, raw: Uint8Array, recipient: KeyObject): { keyId: number; epoch: EpochKey; created: string } {
  if (raw.length > MAX_SESSION_BYTES) throw new LifeboatError('CORRUPT', `${name}: ${raw.length} bytes, too large to be a session key`);
  let obj: SessionObject;
  try {
    obj = JSON.parse(Buffer.from(raw).toString('utf8')) as SessionObject;
  } catch {
    throw new LifeboatError('CORRUPT', `${name}: not a session key object`);
  }
  if (obj?.version !== 2 || typeof obj.epk !== 'string' || typeof obj.box !== 'string') throw new LifeboatError('CORRUPT', `${name}: not a session key object`);
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: recipient, publicKey: createPublicKey({ key: Buffer.from(obj.epk, 'base64'), format: 'der', type: 'spki' }) });
  } catch {
    throw new LifeboatError('CORRUPT', `${name}: no valid ephemeral key`);
  }
  const [, encKey] = decrypt(wrapKey(shared, name), 0, Buffer.from(obj.box, 'base64'), name, { kind: 'keyring', name });
  if (encKey.length !== 32 || sessionKeyName(keyIdOf(encKey)) !== name) throw new LifeboatError('CORRUPT', `${name}: the key inside is not the one its name says`);
  return { keyId: keyIdOf(encKey), epoch: { encKey, session: true }, created: typeof obj.created === 'string' ? obj.created : '' };
}

/**
 * Every session key stored, for a full reader holding the write recipient's private
 * key. A damaged, foreign or renamed object is skipped with a warning: what it sealed
 * stays unreadable, the rest opens.
 */
export async function loadSessions(store: Store, recipientPrivateKey: string, warn: Warn): Promise<Map<number, EpochKey & { created: string }>> {
  const out = new Map<number, EpochKey & { created: string }>();
  const recipient = createPrivateKey({ key: Buffer.from(recipientPrivateKey, 'base64'), format: 'der', type: 'pkcs8' });
  for (const info of await listAll(store, SESSIONS_PREFIX)) {
    try {
      if (info.size > MAX_SESSION_BYTES) throw new LifeboatError('CORRUPT', `${info.key}: ${info.size} bytes, too large to be a session key`);
      const s = openSession(info.key, await store.get(info.key), recipient);
      out.set(s.keyId, { ...s.epoch, created: s.created });
    } catch (err) {
      if (isLifeboatError(err, 'NOT_FOUND')) continue;
      if (!isLifeboatError(err, 'CORRUPT')) throw err;
      warn(`${info.key} skipped: ${err.message}`);
    }
  }
  return out;
}
