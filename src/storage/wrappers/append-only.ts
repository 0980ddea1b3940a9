/**
 * An append-only view of a store, for clients that back up but must not be able to
 * destroy backups: if the host is compromised, the attacker gets a client that can add
 * objects but cannot delete or replace the history already stored (restic's
 * rest-server --append-only). Forget and prune run elsewhere, with a key that is not
 * append-only.
 *
 * The guard is in the client, so it protects against mistakes and against malware
 * that drives Lifeboat, not against malware holding the storage credentials: those
 * need a server-side policy (object lock, an append-only credential) as well.
 */
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { assertKey, holdsBytes, holdsFile, putFile, type ByteRange, type GetOptions, type LocalFile, type ObjectInfo, type PutOptions, type StatOptions, type Store } from '../store.js';

const HINT = 'this client may only add; run forget/prune with a key that is not append-only';

/**
 * Keys this client may still replace and delete:
 * - `locks/`: a lock is refreshed by overwriting it and released by deleting it;
 *   without that every backup would leave the repository locked.
 * - `logs/.../<segment>.partial`: the PostgreSQL streamer replaces the partial
 *   segment as it grows and deletes it once the full segment is archived (create-only,
 *   so protected). Losing a partial loses at most the WAL not yet in a full segment,
 *   which an attacker could withhold anyway by stopping the streamer.
 */
export function mayReplace(key: string): boolean {
  return key.startsWith('locks/') || (key.startsWith('logs/') && key.endsWith('.partial'));
}

export class AppendOnlyStore implements Store {
  readonly location: string;

  constructor(private readonly inner: Store) {
    this.location = inner.location;
  }

  /**
   * Creates new objects. Over an existing key: with `ifAbsent`, ALREADY_EXISTS as the
   * Store contract says (nothing is replaced, and callers such as the WAL archive
   * rely on it to recognise a retried push); without it, identical bytes succeed (an
   * idempotent retry) and different bytes raise PERMISSION. The existence check and
   * the write are one create-only put, so two writers cannot both pass the check.
   */
  async put(key: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    if (opts.ifAbsent || mayReplace(key)) return this.inner.put(key, data, opts);
    try {
      await this.inner.put(key, data, { ifAbsent: true });
      return;
    } catch (err) {
      if (!isLifeboatError(err, 'ALREADY_EXISTS')) throw err;
    }
    if (await holdsBytes(this.inner, key, data)) return;
    throw this.refuse('overwrite', key);
  }

  /** As put, for a file. */
  async putFile(key: string, file: LocalFile, opts: PutOptions = {}): Promise<void> {
    if (opts.ifAbsent || mayReplace(key)) return putFile(this.inner, key, file, opts);
    try {
      await putFile(this.inner, key, file, { ifAbsent: true });
      return;
    } catch (err) {
      if (!isLifeboatError(err, 'ALREADY_EXISTS')) throw err;
    }
    if (await holdsFile(this.inner, key, file)) return;
    throw this.refuse('overwrite', key);
  }

  async stagingDir(): Promise<string | undefined> {
    return this.inner.stagingDir?.();
  }

  /** Raises PERMISSION, whether or not the key exists, except for keys `mayReplace` allows. */
  async delete(key: string): Promise<void> {
    assertKey(key);
    if (!mayReplace(key)) throw this.refuse('delete', key);
    await this.inner.delete(key);
  }

  get(key: string, range?: ByteRange, opts?: GetOptions): Promise<Uint8Array> {
    return this.inner.get(key, range, opts);
  }

  stat(key: string, opts?: StatOptions): Promise<ObjectInfo | undefined> {
    return this.inner.stat(key, opts);
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }

  close(): Promise<void> {
    return this.inner.close();
  }


  private refuse(action: 'delete' | 'overwrite', key: string): LifeboatError {
    return new LifeboatError('PERMISSION', `append-only: ${this.location} refuses to ${action} ${key}`, { hint: HINT });
  }
}
