/**
 * Keys of a version 2 repository: key slots by role, keyring generations, epochs.
 *
 * - A **key slot** (`keys/<sha256 of its bytes>`, plain JSON) belongs to one holder: a
 *   password (scrypt), an external program (`command`, envelope encryption through a
 *   KMS, age, gpg…, see key-command.ts) or a key in a PKCS#11 token (`pkcs11`, see
 *   key-pkcs11.ts) wraps the slot's own X25519 private key and its grant key. The
 *   slot's public key is in the clear, so an administrator can grant keys to every
 *   slot without knowing any other slot's secret. Opening is a strategy (`SlotOpener`)
 *   tried on the slots of its type; what unwraps a slot is always configured locally,
 *   never read from the repository.
 * - A **keyring generation** (`keyring/<n>`, plain JSON) holds one grant per slot:
 *   the keys that slot's role may hold, encrypted to the slot's public key (X25519,
 *   HKDF, AES-256-GCM) and keyed also by the slot's grant key, which only the slot
 *   itself and full slots know. So nobody else can forge a grant: an append-only host
 *   cannot hand an administrator keys of its choosing. Openers use the newest
 *   generation that holds a grant for their slot.
 * - **Epochs**: each generation lists every epoch still in use, each with an
 *   encryption key (every role that may read) and a metadata key (full slots only: it
 *   tags the metadata the administrator trusts, see `sealMeta`). New objects are
 *   sealed under the current epoch; `key rotate` starts a new one, `key remove` too
 *   (what the removed holder learned opens nothing written since), and once
 *   `prune --reseal` has rewritten everything, old epochs are dropped from the keyring.
 * - **Roles**: `full` holds everything; `append` holds the idKey and the encryption
 *   keys (it can back up, deduplicate, read and restore) but no metadata key and no
 *   grant keys, so it can neither create slots nor write metadata that `prune`,
 *   `forget` or retention act on. `write` holds the idKey and the repository's *write
 *   recipient* (an X25519 public key whose private half only full grants hold): it
 *   seals what it writes under a session key of its own, wrapped to that recipient
 *   (sessions.ts), and can read nothing back.
 *
 * docs/format.md specifies the objects; docs/security.md the threat model.
 */
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  scrypt as scryptCb,
  type KeyObject,
} from 'node:crypto';
import * as os from 'node:os';
import { promisify } from 'node:util';
import { LifeboatError, isLifeboatError } from '../errors.js';
import { decrypt, encrypt, keyIdOf, sha256, type EpochKey, type MasterKey } from '../codec/crypto.js';
import { CODEC } from '../codec/compression.js';
import { listAll, type Store } from '../storage/store.js';
import { toHex } from '../util/bytes.js';
import { keys } from './format.js';
import { newSessionKey } from './sessions.js';

export type SlotRole = 'full' | 'append' | 'write';
export type SlotType = 'password' | 'command' | 'pkcs11';

/** What every version 2 slot holds, whatever protects it. */
interface SlotBase {
  version: 2;
  role: SlotRole;
  created: string;
  hostname: string;
  username: string;
  /** Which slot created this one (empty for the first). */
  createdBy: string;
  /** X25519 public key, SPKI DER, base64. */
  publicKey: string;
}

/** A password slot: the secret is sealed under scrypt(password). */
export interface PasswordSlot extends SlotBase {
  type: 'password';
  kdf: KdfParams;
  /** Sealed {privateKey (PKCS#8 DER, base64), grantKey (base64)} under the scrypt key. */
  secret: string;
}

/** A command slot: the secret as an external wrap program returned it (base64 of its stdout). */
export interface CommandSlot extends SlotBase {
  type: 'command';
  secret: string;
}

/** A PKCS#11 slot: the secret encrypted by a token's AES key (C_Encrypt, CKM_AES_GCM). */
export interface Pkcs11Slot extends SlotBase {
  type: 'pkcs11';
  pkcs11: { mechanism: 'CKM_AES_GCM'; iv: string; tagBits: 128 };
  /** base64 of the GCM ciphertext and tag; associated data "lifeboat pkcs11 slot\0" and the public key (key-pkcs11.ts). */
  secret: string;
}

/** A version 2 key slot as stored. */
export type SlotV2 = PasswordSlot | CommandSlot | Pkcs11Slot;

/**
 * What a slot protects: its X25519 private key and grant key, as the small JSON
 * {privateKey (PKCS#8 DER, base64), grantKey (base64)}. This is all an external
 * wrapper (a KMS, an HSM) ever sees.
 */
export interface SlotSecret {
  privateKey: KeyObject;
  grantAuth: Buffer;
}

/**
 * How a new slot's secret is protected: returns the type-specific fields of the slot.
 * `publicKey` (base64 SPKI) is given so a wrapper can bind the wrapped bytes to it.
 */
export interface SlotWrapper {
  readonly type: SlotType;
  wrap(secret: Buffer, publicKey: string): Promise<WrappedFields>;
}

export type WrappedFields =
  | Pick<PasswordSlot, 'type' | 'kdf' | 'secret'>
  | Pick<CommandSlot, 'type' | 'secret'>
  | Pick<Pkcs11Slot, 'type' | 'pkcs11' | 'secret'>;

/**
 * How a repository is opened: a password, a key command, a PKCS#11 key. `openKeyring`
 * hands it each slot of its `type`, in storage order, until one unwraps.
 */
export interface SlotOpener {
  readonly type: SlotType;
  /**
   * The slot's secret bytes (the JSON above), or undefined when this opener does not
   * open this slot (a wrong password, a program that refused). Throws for what stops
   * every attempt (a program that is missing or hangs, a PIN the token refused).
   * Called at most once per slot.
   */
  unwrap(slot: SlotV2, id: string): Promise<Buffer | undefined>;
  /** The error when no slot opened: the message says why, the hint what to check. */
  noneOpened(slotsOfType: number): LifeboatError;
  /** Releases what the opener holds (a token session); called once, after opening. */
  close?(): Promise<void>;
}

export interface KdfParams {
  name: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
}

interface EpochRecord {
  keyId: number;
  encKey: string;
  macKey?: string;
  created: string;
}

/** What a grant gives its slot. */
export interface KeyringPayload {
  idKey: string;
  current: number;
  epochs: EpochRecord[];
  /** Full slots only: every slot's grant key, so new generations can be granted to all. */
  grantKeys?: Record<string, string>;
  /**
   * The repository's write recipient (X25519, base64 DER), made when the first write
   * slot is added: write slots get the public key, full slots the pair (to unwrap the
   * session keys write-only clients store under `sessions/`), append slots nothing.
   */
  writeRecipient?: { publicKey: string; privateKey?: string };
}

interface Grant {
  slot: string;
  role: SlotRole;
  /** Ephemeral X25519 public key, SPKI DER, base64. */
  epk: string;
  box: string;
}

interface Generation {
  version: 2;
  generation: number;
  created: string;
  createdBy: string;
  grants: Grant[];
}

/** An opened version 2 keyring: what `Repository` holds. */
export interface OpenedKeyring {
  master: MasterKey;
  slotId: string;
  role: SlotRole;
  generation: number;
  /** The payload this slot was granted (full slots need it to write the next generation). */
  payload: KeyringPayload;
  /** Reads the newest generation again (long-running writers follow rotations with it). */
  reopen?: () => Promise<OpenedKeyring>;
}

const scrypt = promisify(scryptCb) as (
  password: string,
  salt: Buffer,
  keylen: number,
  opts: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

/**
 * scrypt N=2^15, r=8, p=1 (32 MiB, ~100 ms here): the parameters scrypt's authors
 * recommend for interactive logins. Tests may lower them with LIFEBOAT_TEST_KDF=fast.
 */
export function defaultKdf(): KdfParams {
  if (process.env.LIFEBOAT_TEST_KDF === 'fast') return generatedKdf();
  return { name: 'scrypt', N: 2 ** 15, r: 8, p: 1, salt: randomBytes(32).toString('base64') };
}

/**
 * For a password Lifeboat generated (`generatePassword`): 256 random bits leave nothing
 * for key stretching to protect, so the slot opens in ~2 ms instead of ~90 ms. That is
 * most of what a `pg archive-push` costs beyond Node's start (docs/keys.md, "Generated
 * passwords"). Never used for a password a person chose.
 */
export function generatedKdf(): KdfParams {
  return { name: 'scrypt', N: 1024, r: 8, p: 1, salt: randomBytes(32).toString('base64') };
}

/** A password for `generatedKdf`: 256 random bits, base64url (43 characters). */
export function generatePassword(): string {
  return randomBytes(32).toString('base64url');
}

/** What trying a password on a slot costs (scrypt's work), so cheaper slots are tried first. */
function kdfCost(slot: SlotRead): number {
  const s = slot.slot;
  if (!s || s.version !== 2 || s.type !== 'password') return 0;
  return s.kdf.N * s.kdf.r * s.kdf.p;
}

/**
 * Parameters read from storage are bounded before use: a slot written by an attacker
 * must not make every opener spend gigabytes or hours (N ≤ 2^20 and 1 GiB of memory).
 */
export function checkKdf(kdf: KdfParams | undefined, what: string): KdfParams {
  const ok =
    kdf !== undefined &&
    kdf.name === 'scrypt' &&
    Number.isInteger(kdf.N) && kdf.N >= 2 && kdf.N <= 2 ** 20 && (kdf.N & (kdf.N - 1)) === 0 &&
    Number.isInteger(kdf.r) && kdf.r >= 1 && kdf.r <= 32 &&
    Number.isInteger(kdf.p) && kdf.p >= 1 && kdf.p <= 16 &&
    128 * kdf.N * kdf.r * kdf.p <= 1024 * 1024 * 1024 &&
    typeof kdf.salt === 'string' && Buffer.from(kdf.salt, 'base64').length >= 16;
  if (!ok) throw new LifeboatError('CORRUPT', `${what}: key derivation parameters out of bounds`, { hint: 'the slot is damaged or forged; it was skipped' });
  return kdf;
}

export async function deriveKey(password: string, kdf: KdfParams): Promise<Buffer> {
  return scrypt(password, Buffer.from(kdf.salt, 'base64'), 32, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r * kdf.p + 1024 * 1024 });
}

export function assertUsablePassword(password: string): void {
  if (password.length === 0) {
    throw new LifeboatError('USAGE', 'empty password refused', { hint: 'give a password of at least one character (a long random one for backup hosts)' });
  }
}

// ---- X25519 grants ------------------------------------------------------------------

function grantKey(shared: Buffer, grantAuth: Buffer, generation: number, slot: string): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, grantAuth, `lifeboat grant\0${generation}\0${slot}`, 32));
}

function grantName(generation: number, slot: string): string {
  return `${keys.keyring(generation)}#${slot}`;
}

function makeGrant(generation: number, slot: string, role: SlotRole, publicKey: string, grantAuth: Buffer, payload: KeyringPayload): Grant {
  const eph = generateKeyPairSync('x25519');
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: createPublicKey({ key: Buffer.from(publicKey, 'base64'), format: 'der', type: 'spki' }) });
  const k = grantKey(shared, grantAuth, generation, slot);
  const box = encrypt(k, 0, CODEC.none, Buffer.from(JSON.stringify(payload)), { kind: 'keyring', name: grantName(generation, slot) });
  return { slot, role, epk: eph.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'), box: box.toString('base64') };
}

function openGrant(g: Grant, generation: number, privateKey: KeyObject, grantAuth: Buffer): KeyringPayload {
  const shared = diffieHellman({ privateKey, publicKey: createPublicKey({ key: Buffer.from(g.epk, 'base64'), format: 'der', type: 'spki' }) });
  const k = grantKey(shared, grantAuth, generation, g.slot);
  const [, body] = decrypt(k, 0, Buffer.from(g.box, 'base64'), `grant of ${keys.keyring(generation)}`, { kind: 'keyring', name: grantName(generation, g.slot) });
  return JSON.parse(body.toString('utf8')) as KeyringPayload;
}

/**
 * The grant a role may hold: append slots get no metadata keys, no grant keys and
 * nothing of the write recipient; write slots get only the idKey (blob ids must be the
 * repository's, or their data would not deduplicate for readers), the current epoch's
 * id (informational) and the write recipient's public key: no epoch key at all.
 */
export function payloadFor(role: SlotRole, full: KeyringPayload): KeyringPayload {
  if (role === 'full') return full;
  if (role === 'write') {
    const pub = full.writeRecipient?.publicKey;
    if (!pub) throw new LifeboatError('CORRUPT', 'keyring: a write-only grant without a write recipient');
    return { idKey: full.idKey, current: full.current, epochs: [], writeRecipient: { publicKey: pub } };
  }
  return { idKey: full.idKey, current: full.current, epochs: full.epochs.map(({ keyId, encKey, created }) => ({ keyId, encKey, created })) };
}

export function masterFromPayload(p: KeyringPayload): MasterKey {
  const epochs = new Map<number, EpochKey>();
  for (const e of p.epochs) {
    const encKey = Buffer.from(e.encKey, 'base64');
    if (keyIdOf(encKey) !== e.keyId) throw new LifeboatError('CORRUPT', `keyring: epoch ${e.keyId} does not match its key`);
    epochs.set(e.keyId, e.macKey ? { encKey, macKey: Buffer.from(e.macKey, 'base64') } : { encKey });
  }
  const cur = epochs.get(p.current);
  if (!cur) throw new LifeboatError('CORRUPT', 'keyring: the current epoch is missing');
  return { version: 2, encKey: cur.encKey, idKey: Buffer.from(p.idKey, 'base64'), keyId: p.current, macKey: cur.macKey, epochs };
}

export function newEpoch(): EpochRecord {
  const encKey = randomBytes(32);
  return { keyId: keyIdOf(encKey), encKey: encKey.toString('base64'), macKey: randomBytes(32).toString('base64'), created: new Date().toISOString() };
}

// ---- slots ----------------------------------------------------------------------------

/**
 * Protects a slot's secret with a password (scrypt, then AES-256-GCM). `generated`: the
 * password came from `generatePassword`, and gets `generatedKdf`'s cheap parameters.
 */
export function passwordWrapper(password: string, opts: { generated?: boolean } = {}): SlotWrapper {
  assertUsablePassword(password);
  return {
    type: 'password',
    async wrap(secret) {
      const kdf = opts.generated ? generatedKdf() : defaultKdf();
      const wrapping = await deriveKey(password, kdf);
      return { type: 'password', kdf, secret: encrypt(wrapping, 0, CODEC.none, secret, { kind: 'keyring', name: 'slot secret' }).toString('base64') };
    },
  };
}

/** Opens password slots. An empty password is refused when a slot is made; here it is just a wrong one. */
export function passwordOpener(password: string): SlotOpener {
  return {
    type: 'password',
    async unwrap(slot, id) {
      if (slot.type !== 'password') return undefined;
      const wrapping = await deriveKey(password, checkKdf(slot.kdf, `keys/${id}`));
      try {
        return decrypt(wrapping, 0, Buffer.from(slot.secret, 'base64'), `keys/${id}`, { kind: 'keyring', name: 'slot secret' })[1];
      } catch (err) {
        if (isLifeboatError(err, 'CORRUPT') && /failed authentication/.test(err.message)) return undefined;
        throw err;
      }
    },
    noneOpened: () =>
      new LifeboatError('WRONG_PASSWORD', 'wrong password: no key slot of this repository opens with it', {
        hint: 'check --password-file / LIFEBOAT_PASSWORD; `lifeboat key list` shows the slots',
      }),
  };
}

/**
 * Reads an unwrapped secret and checks it belongs to the slot: its private key must
 * give the slot's public key. An external program's output is not authenticated by
 * anything else, so a program that answers with another slot's secret, or garbage,
 * opens nothing.
 */
function parseSecret(body: Buffer, slot: SlotV2): SlotSecret | undefined {
  let raw: { privateKey?: unknown; grantKey?: unknown };
  try {
    raw = JSON.parse(body.toString('utf8')) as typeof raw;
  } catch {
    return undefined;
  }
  if (typeof raw?.privateKey !== 'string' || typeof raw.grantKey !== 'string') return undefined;
  try {
    const privateKey = createPrivateKey({ key: Buffer.from(raw.privateKey, 'base64'), format: 'der', type: 'pkcs8' });
    const pub = createPublicKey(privateKey).export({ format: 'der', type: 'spki' }).toString('base64');
    if (pub !== slot.publicKey) return undefined;
    return { privateKey, grantAuth: Buffer.from(raw.grantKey, 'base64') };
  } catch {
    return undefined;
  }
}

/** A new slot protected by `wrapper`; returns its id, its stored object, and its grant key. */
async function makeSlot(wrapper: SlotWrapper, role: SlotRole, createdBy: string): Promise<{ id: string; bytes: Buffer; slot: SlotV2; grantAuth: Buffer }> {
  const pair = generateKeyPairSync('x25519');
  const grantAuth = randomBytes(32);
  const publicKey = pair.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
  const secret = Buffer.from(JSON.stringify({ privateKey: pair.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'), grantKey: grantAuth.toString('base64') }));
  let fields: WrappedFields;
  try {
    fields = await wrapper.wrap(secret, publicKey);
  } finally {
    secret.fill(0);
  }
  const { type, ...wrapped } = fields;
  // "type" right after "version", so a reader sees first what protects the slot.
  const base: SlotBase & { type: SlotType } = {
    version: 2,
    type,
    role,
    created: new Date().toISOString(),
    hostname: os.hostname(),
    username: os.userInfo().username,
    createdBy,
    publicKey,
  };
  const slot = { ...base, ...wrapped } as SlotV2;
  const bytes = Buffer.from(JSON.stringify(slot, null, 2));
  return { id: toHex(sha256(bytes)), bytes, slot, grantAuth };
}

const MAX_SLOT_BYTES = 64 * 1024;
const MAX_GENERATION_BYTES = 16 * 1024 * 1024;

export interface SlotRead {
  id: string;
  slot?: SlotV2 | { version: 1; appendOnly?: boolean; created: string; hostname: string; username: string };
  /** Why the object could not be used, when it could not. */
  problem?: string;
}

/** Every object under keys/, parsed; damaged or foreign ones carry a problem instead. */
export async function readSlots(store: Store): Promise<SlotRead[]> {
  const out: SlotRead[] = [];
  for (const info of await listAll(store, 'keys/')) {
    const id = info.key.slice('keys/'.length);
    try {
      if (info.size > MAX_SLOT_BYTES) throw new LifeboatError('CORRUPT', `${info.key} is ${info.size} bytes, too large to be a key slot`);
      const raw = Buffer.from(await store.get(info.key, undefined, { verify: (d) => toHex(sha256(d)) === id }));
      if (toHex(sha256(raw)) !== id) throw new LifeboatError('CORRUPT', `${info.key} does not match its name`);
      const slot = JSON.parse(raw.toString('utf8')) as SlotRead['slot'];
      if (!slot || (slot.version !== 1 && slot.version !== 2)) throw new LifeboatError('CORRUPT', `${info.key} is not a key slot`);
      if (slot.version === 2) checkSlot(slot, info.key);
      out.push({ id, slot });
    } catch (err) {
      if (isLifeboatError(err, 'NOT_FOUND')) continue;
      if (!isLifeboatError(err, 'CORRUPT') && !(err instanceof SyntaxError)) throw err;
      out.push({ id, problem: err instanceof Error ? err.message : String(err) });
    }
  }
  return out;
}

/** Structure and bounds of a version 2 slot, checked before any work is spent on it. */
function checkSlot(slot: SlotV2, what: string): void {
  if (slot.type === 'password') checkKdf(slot.kdf, what);
  try {
    createPublicKey({ key: Buffer.from(slot.publicKey, 'base64'), format: 'der', type: 'spki' });
  } catch {
    throw new LifeboatError('CORRUPT', `${what}: no valid public key`);
  }
  if (typeof slot.secret !== 'string' || slot.secret.length === 0) throw new LifeboatError('CORRUPT', `${what}: no wrapped secret`);
}

async function readGeneration(store: Store, key: string): Promise<Generation | undefined> {
  try {
    const raw = Buffer.from(await store.get(key, undefined, { verify: (d) => parsesAsGeneration(d, key) }));
    if (raw.length > MAX_GENERATION_BYTES) return undefined;
    const g = JSON.parse(raw.toString('utf8')) as Generation;
    if (g.version !== 2 || key !== keys.keyring(g.generation) || !Array.isArray(g.grants)) return undefined;
    return g;
  } catch (err) {
    if (isLifeboatError(err, 'NOT_FOUND') || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

function parsesAsGeneration(d: Uint8Array, key: string): boolean {
  try {
    const g = JSON.parse(Buffer.from(d).toString('utf8')) as Generation;
    return g.version === 2 && key === keys.keyring(g.generation);
  } catch {
    return false;
  }
}

/** Keyring generations, newest first. */
async function listGenerations(store: Store): Promise<Array<{ key: string; generation: number }>> {
  const out: Array<{ key: string; generation: number }> = [];
  for (const o of await listAll(store, 'keyring/')) {
    const n = Number(o.key.slice('keyring/'.length));
    if (Number.isSafeInteger(n) && n > 0 && o.key === keys.keyring(n)) out.push({ key: o.key, generation: n });
  }
  return out.sort((a, b) => b.generation - a.generation);
}

export type Warn = (message: string) => void;

/**
 * Opens a version 2 repository with a password or another `SlotOpener`: every slot of
 * the opener's type is tried (a damaged one is skipped with a warning, never blocks
 * the others), then the newest generation that grants the slot keys. A slot no
 * generation grants anything was removed.
 */
export async function openKeyring(store: Store, how: string | SlotOpener, warn: Warn = () => {}): Promise<OpenedKeyring> {
  const opener = typeof how === 'string' ? passwordOpener(how) : how;
  try {
    return await openWith(store, opener, warn);
  } finally {
    await opener.close?.();
  }
}

async function openWith(store: Store, opener: SlotOpener, warn: Warn): Promise<OpenedKeyring> {
  const slots = await readSlots(store);
  // Several slots may open with one secret (a copy of a slot with its public fields
  // changed, for one): the one a generation grants keys to is the one that counts.
  let opened = 0;
  let removed: string | undefined;
  let ofType = 0;
  // Every damaged slot is named, not only those tried before the one that opens.
  for (const s of slots) if (s.problem) warn(`key slot ${s.id.slice(0, 8)} skipped: ${s.problem}`);
  // Password slots cheapest first: a generated password's slot opens before any slow
  // scrypt is spent on the others (stable: equal costs keep their storage order).
  const order = opener.type === 'password' ? [...slots].sort((a, b) => kdfCost(a) - kdfCost(b)) : slots;
  for (const s of order) {
    if (s.problem || !s.slot || s.slot.version !== 2) continue;
    const slot = s.slot;
    // Slots written by newer versions, or without a type, are not ours to try.
    if (slot.type !== opener.type) continue;
    ofType++;
    let secret: ReturnType<typeof parseSecret>;
    try {
      const body = await opener.unwrap(slot, s.id);
      if (!body) continue;
      secret = parseSecret(body, slot);
      body.fill(0);
    } catch (err) {
      if (isLifeboatError(err, 'CORRUPT') || err instanceof SyntaxError || err instanceof TypeError) {
        warn(`key slot ${s.id.slice(0, 8)} skipped: ${(err as Error).message}`);
        continue;
      }
      throw err;
    }
    if (!secret) {
      warn(`key slot ${s.id.slice(0, 8)} skipped: what unwrapped it is not this slot's key`);
      continue;
    }
    opened++;
    try {
      return await newestFor(store, { id: s.id, ...secret }, warn);
    } catch (err) {
      if (!isLifeboatError(err, 'WRONG_PASSWORD')) throw err;
      removed ??= s.id;
    }
  }
  if (opened === 0) {
    if (slots.length === 0) {
      throw new LifeboatError('CORRUPT', `${store.location}: repository has no key slots`, {
        hint: 'the keys/ folder is missing; restore it from another copy of the repository',
      });
    }
    throw opener.noneOpened(ofType);
  }
  throw new LifeboatError('WRONG_PASSWORD', `key slot ${(removed ?? '').slice(0, 8)} was removed: no keyring generation grants it any key`, {
    hint: 'ask an administrator for a password of a current key slot (`lifeboat key list`)',
  });
}

/** The newest generation granting `slot` keys; WRONG_PASSWORD when none does. */
async function newestFor(store: Store, slot: { id: string; privateKey: KeyObject; grantAuth: Buffer }, warn: Warn): Promise<OpenedKeyring> {
  const newest = async (): Promise<OpenedKeyring> => {
    for (const { key, generation } of await listGenerations(store)) {
      const g = await readGeneration(store, key);
      const grant = g?.grants.find((x) => x.slot === slot.id);
      if (!g || !grant) continue;
      try {
        const payload = openGrant(grant, generation, slot.privateKey, slot.grantAuth);
        // The role comes from the grant the administrator wrote, never from the slot
        // object alone: a slot file claiming "full" gets what its grant holds.
        const role: SlotRole =
          grant.role === 'full' && payload.grantKeys ? 'full' : grant.role === 'write' || payload.epochs.length === 0 ? 'write' : 'append';
        const mine = payloadFor(role, payload);
        // A write-only client holds no epoch key: it seals under a session key of its
        // own (sessions.ts), made here and stored only when it first writes.
        const master = role === 'write' ? newSessionKey(mine) : masterFromPayload(mine);
        return { master, slotId: slot.id, role, generation, payload: mine, reopen: newest };
      } catch (err) {
        if (!isLifeboatError(err, 'CORRUPT') && !(err instanceof SyntaxError)) throw err;
        warn(`${key}: the grant for key slot ${slot.id.slice(0, 8)} does not open (${(err as Error).message}); trying older generations`);
      }
    }
    throw new LifeboatError('WRONG_PASSWORD', `key slot ${slot.id.slice(0, 8)} was removed: no keyring generation grants it any key`, {
      hint: 'ask an administrator for a password of a current key slot (`lifeboat key list`)',
    });
  };
  return newest();
}

// ---- administration (full slots only) ------------------------------------------------------

export function assertFull(k: Pick<OpenedKeyring, 'role'>, what: string): void {
  if (k.role !== 'full') {
    throw new LifeboatError('PERMISSION', `${what} needs a full key; this key slot is ${k.role}-only`, {
      hint: 'open the repository with an administrator password; restricted keys can never create, change or remove keys',
    });
  }
}

/**
 * Writes generation `current.generation + 1` granting `next` to every slot named in
 * its grant keys. Fails with ALREADY_EXISTS when another administrator wrote that
 * generation first (the caller reopens and retries).
 */
async function writeGeneration(store: Store, current: OpenedKeyring, next: KeyringPayload, warn: Warn): Promise<number> {
  const generation = current.generation + 1;
  const byId = new Map((await readSlots(store)).map((s) => [s.id, s]));
  const grants: Grant[] = [];
  for (const [slotId, auth] of Object.entries(next.grantKeys ?? {})) {
    const s = byId.get(slotId)?.slot;
    if (!s || s.version !== 2) {
      warn(`key slot ${slotId.slice(0, 8)} is missing or damaged: it gets no grant in generation ${generation}`);
      continue;
    }
    // A slot's role is what its creator decided; stored beside its grant key.
    const role = roleOf(next, slotId);
    grants.push(makeGrant(generation, slotId, role, s.publicKey, authOf(auth), payloadFor(role, next)));
  }
  const g: Generation = { version: 2, generation, created: new Date().toISOString(), createdBy: current.slotId, grants };
  await store.put(keys.keyring(generation), Buffer.from(JSON.stringify(g)), { ifAbsent: true });
  return generation;
}

/** Roles are kept in the full payload as a suffix of the grant key entry: "<base64>:<role>". */
function roleOf(p: KeyringPayload, slotId: string): SlotRole {
  const v = p.grantKeys?.[slotId] ?? '';
  return v.endsWith(':append') ? 'append' : v.endsWith(':write') ? 'write' : 'full';
}

function withSlot(p: KeyringPayload, slotId: string, auth: Buffer, role: SlotRole): KeyringPayload {
  return { ...p, grantKeys: { ...(p.grantKeys ?? {}), [slotId]: `${auth.toString('base64')}${role === 'full' ? '' : `:${role}`}` } };
}

/** The payload with a write recipient, made now if there is none yet (the first write slot). */
function withWriteRecipient(p: KeyringPayload): KeyringPayload {
  if (p.writeRecipient?.privateKey) return p;
  const pair = generateKeyPairSync('x25519');
  return {
    ...p,
    writeRecipient: {
      publicKey: pair.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
      privateKey: pair.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
    },
  };
}

function authOf(entry: string): Buffer {
  return Buffer.from(entry.split(':')[0] ?? '', 'base64');
}

/** Deletes generations older than `keep` (they grant removed slots or destroyed epochs). */
async function dropOlderGenerations(store: Store, keep: number): Promise<void> {
  for (const { key, generation } of await listGenerations(store)) {
    if (generation < keep) await store.delete(key).catch((err: unknown) => { if (!isLifeboatError(err, 'NOT_FOUND')) throw err; });
  }
}

/**
 * Creates the first slot and generation of a new version 2 repository. Migrating a
 * version 1 repository passes its keys: the idKey is kept (blob ids, deduplication and
 * the chunker stay the same) and its encryption key becomes an older epoch (what it
 * sealed stays readable; `prune --reseal` retires it), beside a new current one.
 */
export async function initKeyring(store: Store, password: string, from?: MasterKey): Promise<OpenedKeyring> {
  const made = await makeSlot(passwordWrapper(password), 'full', '');
  const epoch = newEpoch();
  const inherited: EpochRecord[] = from
    ? [{ keyId: keyIdOf(from.encKey), encKey: from.encKey.toString('base64'), macKey: randomBytes(32).toString('base64'), created: new Date().toISOString() }]
    : [];
  const payload0: KeyringPayload = { idKey: (from?.idKey ?? randomBytes(32)).toString('base64'), current: epoch.keyId, epochs: [...inherited, epoch] };
  const payload = withSlot(payload0, made.id, made.grantAuth, 'full');
  await store.put(`keys/${made.id}`, made.bytes, { ifAbsent: true });
  const none: OpenedKeyring = { master: masterFromPayload(payload), slotId: made.id, role: 'full', generation: 0, payload };
  const generation = await writeGeneration(store, none, payload, () => {});
  return { ...none, generation };
}

async function commit(store: Store, k: OpenedKeyring, next: KeyringPayload, warn: Warn, dropOld: boolean): Promise<OpenedKeyring> {
  const generation = await writeGeneration(store, k, next, warn).catch((err: unknown) => {
    if (isLifeboatError(err, 'ALREADY_EXISTS')) {
      throw new LifeboatError('LOCKED', 'another administrator changed the keys at the same moment', { hint: 'run the command again' });
    }
    throw err;
  });
  if (dropOld) await dropOlderGenerations(store, generation);
  return { ...k, generation, payload: next, master: masterFromPayload(next) };
}

/**
 * Adds a slot of `role` protected by a password or another `SlotWrapper`; only a full
 * slot may (checked before the wrapper runs: a restricted key sends nothing to a KMS).
 */
export async function addSlot(store: Store, k: OpenedKeyring, how: string | SlotWrapper, role: SlotRole, warn: Warn = () => {}): Promise<{ id: string; keyring: OpenedKeyring }> {
  assertFull(k, 'adding a key');
  const made = await makeSlot(typeof how === 'string' ? passwordWrapper(how) : how, role, k.slotId);
  await store.put(`keys/${made.id}`, made.bytes, { ifAbsent: true });
  const base = role === 'write' ? withWriteRecipient(k.payload) : k.payload;
  const keyring = await commit(store, k, withSlot(base, made.id, made.grantAuth, role), warn, false);
  return { id: made.id, keyring };
}

/**
 * Removes a slot: a new generation grants nothing to it and starts a new epoch (so
 * what its holder may have kept opens nothing written from now on); older generations
 * and the slot object are deleted.
 */
export async function removeSlot(store: Store, k: OpenedKeyring, slotId: string, warn: Warn = () => {}): Promise<OpenedKeyring> {
  assertFull(k, 'removing a key');
  const grantKeys = { ...(k.payload.grantKeys ?? {}) };
  delete grantKeys[slotId];
  const epoch = newEpoch();
  const next: KeyringPayload = { ...k.payload, grantKeys, current: epoch.keyId, epochs: [...k.payload.epochs, epoch] };
  const out = await commit(store, k, next, warn, true);
  await store.delete(`keys/${slotId}`).catch((err: unknown) => { if (!isLifeboatError(err, 'NOT_FOUND')) throw err; });
  return out;
}

/** Starts a new epoch: new objects are sealed under it at once. */
export async function rotate(store: Store, k: OpenedKeyring, warn: Warn = () => {}): Promise<OpenedKeyring> {
  assertFull(k, 'rotating keys');
  const epoch = newEpoch();
  return commit(store, k, { ...k.payload, current: epoch.keyId, epochs: [...k.payload.epochs, epoch] }, warn, true);
}

/** Destroys the keys of epochs no object uses any more (after `prune --reseal`). */
export async function dropEpochs(store: Store, k: OpenedKeyring, keyIds: ReadonlySet<number>, warn: Warn = () => {}): Promise<OpenedKeyring> {
  assertFull(k, 'destroying old key epochs');
  if (keyIds.has(k.payload.current)) throw new Error('the current epoch cannot be dropped');
  const epochs = k.payload.epochs.filter((e) => !keyIds.has(e.keyId));
  if (epochs.length === k.payload.epochs.length) return k;
  return commit(store, k, { ...k.payload, epochs }, warn, true);
}

/** The role a full keyring gives a slot, or undefined for a slot it does not grant. */
export function roleOfSlot(k: OpenedKeyring, slotId: string): SlotRole | undefined {
  return k.payload.grantKeys?.[slotId] === undefined ? undefined : roleOf(k.payload, slotId);
}

/** Epoch facts for `key list` and metrics. */
export function epochInfo(k: OpenedKeyring): Array<{ keyId: number; created: string; current: boolean }> {
  return k.payload.epochs.map((e) => ({ keyId: e.keyId, created: e.created, current: e.keyId === k.payload.current }));
}
