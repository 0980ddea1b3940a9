/**
 * The sealed copy of the repository's `config` (`state/config`). `config` stays plain
 * JSON, so any reader can see the format version before it has a password; the copy,
 * sealed with the repository key when the repository is created, holds its exact
 * bytes. After a password opened the key, the two are compared: a damaged or forged
 * `config` is refused (CORRUPT), and a lost or damaged one is restored from the copy
 * by `lifeboat repair config`. See docs/format.md, "The config and its sealed copy".
 */
import { LifeboatError, isLifeboatError } from '../errors.js';
import { seal, unseal, type MasterKey, type SealContext } from '../codec/crypto.js';
import type { Store } from '../storage/store.js';
import { keys, parseConfig, type RepoConfig } from './format.js';
import { MAX_RECORD } from './limits.js';

/** Where the sealed copy lives: beside `state/verified`, never under `keys/` (whose listing means key slots). */
export const CONFIG_COPY = 'state/config';
const COPY_CTX: SealContext = { kind: 'state', name: CONFIG_COPY };

interface ConfigCopy {
  v: 1;
  /** The exact bytes of `config`, base64. */
  config: string;
}

export function sealConfigCopy(key: MasterKey, raw: Uint8Array): Buffer {
  const copy: ConfigCopy = { v: 1, config: Buffer.from(raw).toString('base64') };
  return seal(key, Buffer.from(JSON.stringify(copy)), { codec: 'none', level: 0 }, COPY_CTX);
}

/**
 * The config bytes the copy holds; undefined when there is no copy (a repository made
 * before copies existed). A copy that does not authenticate raises CORRUPT.
 */
export async function readConfigCopy(store: Pick<Store, 'get'>, key: MasterKey): Promise<Buffer | undefined> {
  let plain: Buffer | undefined;
  const verify = (data: Uint8Array): boolean => {
    try {
      plain = unseal(key, data, CONFIG_COPY, COPY_CTX, MAX_RECORD);
      return true;
    } catch {
      return false;
    }
  };
  let sealed: Uint8Array;
  try {
    sealed = await store.get(CONFIG_COPY, undefined, { verify });
  } catch (err) {
    if (isLifeboatError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
  plain ??= unseal(key, sealed, CONFIG_COPY, COPY_CTX, MAX_RECORD);
  try {
    const copy = JSON.parse(plain.toString('utf8')) as ConfigCopy;
    if (copy.v !== 1 || typeof copy.config !== 'string') throw new Error('malformed');
    return Buffer.from(copy.config, 'base64');
  } catch (err) {
    throw new LifeboatError('CORRUPT', `${CONFIG_COPY}: not a config copy`, { hint: 'run `lifeboat check`', cause: err });
  }
}

/**
 * Compares `config` with its sealed copy. Returns 'verified'; 'no-copy' for a
 * repository made before copies existed (`lifeboat repair config` writes one); or
 * 'copy-damaged' when the copy itself does not authenticate (the config may be whole:
 * `check` reports it). A config that differs from an authentic copy raises CORRUPT.
 */
export async function verifyConfig(store: Pick<Store, 'get'>, key: MasterKey, raw: Uint8Array): Promise<'verified' | 'no-copy' | 'copy-damaged'> {
  let copy: Buffer | undefined;
  try {
    copy = await readConfigCopy(store, key);
  } catch (err) {
    if (isLifeboatError(err, 'CORRUPT') || isLifeboatError(err, 'UNSUPPORTED_FORMAT')) return 'copy-damaged';
    throw err;
  }
  if (!copy) return 'no-copy';
  if (!copy.equals(Buffer.from(raw))) {
    throw new LifeboatError('CORRUPT', `config does not match its sealed copy (${CONFIG_COPY}): damaged or forged`, {
      hint: '`lifeboat repair config` restores it from the sealed copy',
    });
  }
  return 'verified';
}

/** Prefixes whose objects mean a repository is here, even without its `config`. */
const REPOSITORY_PREFIXES = ['keys/', 'snapshots/', 'index/', 'data/', 'logs/', 'state/', 'sessions/'];

async function hasAny(store: Pick<Store, 'list'>, prefix: string): Promise<boolean> {
  for await (const _ of store.list(prefix)) return true;
  return false;
}

/**
 * `init` where a repository lost its config: refused (REPO_EXISTS). A new master key
 * written over it would hide every snapshot.
 */
export async function refuseInitOverRepository(store: Pick<Store, 'list' | 'location'>): Promise<void> {
  for (const prefix of REPOSITORY_PREFIXES) {
    if (await hasAny(store, prefix)) {
      throw new LifeboatError('REPO_EXISTS', `${store.location}: a repository is here (${prefix} exists) but its config is missing; init refuses to write over it`, {
        hint: '`lifeboat repair config` restores the config from its sealed copy',
      });
    }
  }
}

/** The error for a location without `config`: a lost config (keys or snapshots are there) or no repository. */
export async function configNotFound(store: Pick<Store, 'list' | 'location'>): Promise<LifeboatError> {
  if ((await hasAny(store, 'keys/')) || (await hasAny(store, 'snapshots/'))) {
    return new LifeboatError('REPO_NOT_FOUND', `${store.location}: the repository's config is missing (its keys or snapshots are here)`, {
      hint: '`lifeboat repair config` restores it from its sealed copy; do not run init here',
    });
  }
  return new LifeboatError('REPO_NOT_FOUND', `${store.location}: no repository here`, {
    hint: 'check --repo / LIFEBOAT_REPOSITORY, or create one with `lifeboat init`',
  });
}

export interface ConfigRepair {
  action: 'restored' | 'copy-written' | 'intact';
  config: RepoConfig;
}

/**
 * `lifeboat repair config`: writes `config` back from the sealed copy when it is
 * missing or differs; writes the copy when only it is missing (it then trusts the
 * `config` that is there, the best a repository without a copy can do).
 */
export async function repairConfig(store: Store, key: MasterKey): Promise<ConfigRepair> {
  const copy = await readConfigCopy(store, key);
  let raw: Uint8Array | undefined;
  try {
    raw = await store.get(keys.config);
  } catch (err) {
    if (!isLifeboatError(err, 'NOT_FOUND')) throw err;
  }
  if (copy) {
    const config = parseConfig(copy, store.location);
    if (raw && copy.equals(Buffer.from(raw))) return { action: 'intact', config };
    await store.put(keys.config, copy, raw ? {} : { ifAbsent: true });
    return { action: 'restored', config };
  }
  if (!raw) {
    throw new LifeboatError('CORRUPT', `${store.location}: neither config nor its sealed copy (${CONFIG_COPY}) is here`, {
      hint: 'copy `config` from another copy of the repository (any destination or an older backup of it)',
    });
  }
  const config = parseConfig(raw, store.location);
  await store.put(CONFIG_COPY, sealConfigCopy(key, raw), { ifAbsent: true });
  return { action: 'copy-written', config };
}
