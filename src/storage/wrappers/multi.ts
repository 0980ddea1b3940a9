/**
 * One repository kept on several destinations (3-2-1: local disk plus object storage
 * elsewhere). Every write goes to all of them and is durable once `writeQuorum` have
 * acknowledged it; a destination that fails is left out for the rest of the process
 * (no backup waits on a dead server) and `lifeboat repair` fills it in afterwards.
 * Reads take the first destination that has the object and passes the caller's
 * check, so one down or damaged copy is not noticed by a restore.
 *
 * What a destination that failed means for what the process sees: a listing is the
 * union of every destination's, so one that could not be listed (down, or failing
 * part-way) leaves it short of what only that one holds (the newest snapshots, the
 * packs a write there took alone). Such a destination is left out like one whose
 * write failed, and is reported (`onDegraded`); deletes then refuse, so nothing is
 * ever removed on the strength of a listing that missed what it did not see (prune
 * would otherwise sweep packs whose snapshots were on the destination it could not
 * list). A stat that must be sure (`StatOptions.sure`: PostgreSQL's recovery ends at a
 * WAL file "not there") is no "not there" while some destination could not answer.
 * Before the first write, every destination must hold this repository's config: an
 * emptied or replaced bucket is left out (and reported) instead of being filled with
 * snapshots whose older packs it lacks.
 */
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { assertKey, firstStagingDir, putFile, type ByteRange, type GetOptions, type LocalFile, type ObjectInfo, type PutOptions, type StatOptions, type Store } from '../store.js';

export interface MultiOptions {
  /** Destinations that must acknowledge a write (1..N). */
  writeQuorum: number;
  /** Told once when a destination is left out after a failure. */
  onDegraded?: (store: Store, err: LifeboatError) => void;
}

export class MultiStore implements Store {
  readonly location: string;
  /** Destinations left out after a failed write, with why. */
  readonly down = new Map<Store, LifeboatError>();

  constructor(
    readonly stores: readonly Store[],
    private readonly opts: MultiOptions,
  ) {
    if (stores.length === 0) throw new LifeboatError('USAGE', 'a multi-destination repository needs at least one store');
    if (!Number.isInteger(opts.writeQuorum) || opts.writeQuorum < 1 || opts.writeQuorum > stores.length) {
      throw new LifeboatError('USAGE', `write quorum ${opts.writeQuorum} is not between 1 and ${stores.length}`, {
        hint: 'write_quorum is how many destinations must acknowledge each write',
      });
    }
    this.location = `multi(${stores.map((s) => s.location).join(', ')})`;
  }

  private up(): Store[] {
    return this.stores.filter((s) => !this.down.has(s));
  }

  private markDown(store: Store, err: LifeboatError): void {
    if (this.down.has(store)) return;
    this.down.set(store, err);
    this.opts.onDegraded?.(store, err);
  }

  /**
   * Writes to every destination still up. Resolves when `writeQuorum` acknowledged;
   * ALREADY_EXISTS counts as an acknowledgement (the object is there), but only when
   * every answer was ALREADY_EXISTS does the caller see it. Permanent refusals
   * (permission, no space) from any destination fail the call.
   */
  async put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void> {
    assertKey(key);
    await this.writeAll(key, (s) => s.put(key, data, opts));
  }

  /**
   * As put, for a file: each destination takes it its own way (a local one links it,
   * others read it), so the file must stay until every destination has answered.
   */
  async putFile(key: string, file: LocalFile, opts?: PutOptions): Promise<void> {
    assertKey(key);
    await this.writeAll(key, (s) => putFile(s, key, file, opts));
  }

  /** The staging directory of the first destination still up that has one. */
  async stagingDir(): Promise<string | undefined> {
    return firstStagingDir(this.up());
  }

  private async writeAll(key: string, write: (store: Store) => Promise<void>): Promise<void> {
    if (key !== 'config') await (this.configChecked ??= this.checkConfigs());
    const targets = this.up();
    const results = await Promise.allSettled(targets.map(write));
    let acks = 0;
    let existed = 0;
    let failure: LifeboatError | undefined;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') acks++;
      else if (isLifeboatError(r.reason, 'ALREADY_EXISTS')) {
        acks++;
        existed++;
      } else {
        const err = asLifeboatError(r.reason);
        failure ??= err;
        this.markDown(targets[i] as Store, err);
      }
    });
    failure ??= [...this.down.values()][0];
    if (acks < this.opts.writeQuorum) {
      throw new LifeboatError(failure?.code ?? 'STORE_UNAVAILABLE', `${key}: ${acks} of ${this.stores.length} destinations stored it, ${this.opts.writeQuorum} needed: ${failure?.message ?? 'destinations down'}`, {
        hint: failure?.hint ?? 'bring the destinations back, or lower write_quorum',
        cause: failure,
      });
    }
    if (existed === acks) throw new LifeboatError('ALREADY_EXISTS', `${key} already exists in ${this.location}`);
  }

  /**
   * The first destination (those up first) that has the object and passes
   * `opts.verify`. NOT_FOUND only when none has it; when every copy fails the check,
   * the last one read is returned for the caller to report.
   */
  async get(key: string, range?: ByteRange, opts?: GetOptions): Promise<Uint8Array> {
    let lastBad: Uint8Array | undefined;
    let lastErr: LifeboatError | undefined = this.unreachable();
    let missing = 0;
    for (const store of this.readOrder()) {
      try {
        const data = await store.get(key, range, opts);
        if (!opts?.verify || opts.verify(data)) return data;
        lastBad = data;
      } catch (err) {
        if (isLifeboatError(err, 'NOT_FOUND')) missing++;
        else lastErr = asLifeboatError(err);
      }
    }
    if (lastBad) return lastBad;
    if (missing === this.stores.length || !lastErr) throw new LifeboatError('NOT_FOUND', `${key} not found in ${this.location}`);
    throw lastErr;
  }

  /**
   * The first destination's answer that has the object; undefined when one that
   * answered has none. With `sure`, and writes that need fewer destinations than there
   * are, undefined only when every destination answered so: one that could not answer
   * may hold what only it was given (a WAL segment written while another was down),
   * and "not there" would then end a recovery early or let a check pass. When every
   * write needs every destination, any one that answers "not there" is believed.
   */
  async stat(key: string, opts?: StatOptions): Promise<ObjectInfo | undefined> {
    const strict = opts?.sure === true && this.opts.writeQuorum < this.stores.length;
    let lastErr: unknown = this.unreachable();
    let answered = false;
    for (const store of this.readOrder()) {
      try {
        const info = await store.stat(key);
        if (info) return info;
        answered = true;
      } catch (err) {
        lastErr ??= err;
      }
    }
    if (lastErr !== undefined && (strict || !answered)) throw lastErr;
    return undefined;
  }

  /**
   * The union of every reachable destination's listing, each key once: an object
   * written while one destination was down is still found. Holds the keys seen (about
   * 100 bytes each; a repository of 1 TiB has some 65 000 packs). A destination whose
   * listing fails (at once or part-way) is left out and reported: the union may lack
   * what only it holds, and deletes refuse from then on.
   */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const seen = new Set<string>();
    let reached = 0;
    let lastErr: unknown = this.unreachable();
    for (const store of this.readOrder()) {
      try {
        for await (const o of store.list(prefix)) {
          if (seen.has(o.key)) continue;
          seen.add(o.key);
          yield o;
        }
        reached++;
      } catch (err) {
        lastErr = err;
        const e = asLifeboatError(err);
        this.markDown(
          store,
          new LifeboatError(e.code, `could not be listed (${prefix || 'everything'}): ${e.message}; what this run sees lacks what only it holds, and nothing is deleted`, {
            hint: 'bring it back and run again, or leave it out of the repository\'s stores',
            cause: e,
          }),
        );
      }
    }
    if (reached === 0) throw lastErr;
  }

  /**
   * Deletes everywhere; a destination that cannot be reached fails the call, since
   * `repair` would copy the object back from it. Locks are the exception: a lock left
   * on a destination that is down goes stale there and is never copied.
   */
  async delete(key: string): Promise<void> {
    const isLock = key.startsWith('locks/');
    if (!isLock) await this.allReachable(key);
    const targets = isLock ? this.up() : this.stores;
    const results = await Promise.allSettled(targets.map((s) => s.delete(key)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) {
      const err = asLifeboatError(failed.reason);
      throw new LifeboatError(err.code, `delete ${key} did not reach every destination: ${err.message}`, {
        hint: 'deletes need every destination; retry when all are reachable',
        cause: err,
      });
    }
  }

  /**
   * Before the first delete, every destination is asked for something; one that does
   * not answer (or was left out earlier) fails the delete before any copy is gone.
   */
  private async allReachable(key: string): Promise<void> {
    if (!this.probed) {
      const results = await Promise.allSettled(this.stores.map((s) => s.stat('config')));
      results.forEach((r, i) => {
        if (r.status === 'rejected') this.markDown(this.stores[i] as Store, asLifeboatError(r.reason));
      });
      this.probed = true;
    }
    const [first] = this.down.values();
    if (first) {
      throw new LifeboatError(first.code, `delete ${key}: not every destination is reachable: ${first.message}`, {
        hint: 'deletes need every destination; retry when all are reachable',
        cause: first,
      });
    }
  }

  private probed = false;

  private configChecked: Promise<void> | undefined;

  /**
   * Leaves out destinations that do not hold this repository: no config where another
   * destination has one (emptied, or replaced by a new bucket), or another
   * repository's. Writes there would give it snapshots whose older packs it lacks, and
   * `check` reads the union, so nothing would tell. One that cannot be read is left
   * to fail its writes as usual.
   */
  private async checkConfigs(): Promise<void> {
    const answers = await Promise.allSettled(this.stores.map((s) => s.get('config')));
    const ids = answers.map((a) => (a.status === 'fulfilled' ? repositoryId(a.value) : undefined));
    const reference = ids.find((id) => id !== undefined);
    if (reference === undefined) return; // a new repository: nothing has a config yet
    answers.forEach((a, i) => {
      const store = this.stores[i] as Store;
      if (a.status === 'rejected' && !isLifeboatError(a.reason, 'NOT_FOUND')) return;
      if (ids[i] === reference) return;
      this.markDown(
        store,
        a.status === 'rejected'
          ? new LifeboatError('REPO_NOT_FOUND', 'holds no repository (no config, where the other destinations have one): was it emptied or replaced?', {
              hint: 'run `lifeboat repair` to copy the repository into it from the others',
            })
          : new LifeboatError('REPO_NOT_FOUND', "holds another repository's config", { hint: "a repository's stores must be copies of one repository" }),
      );
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.stores.map((s) => s.close()));
  }

  /**
   * Why a destination left out could not be reached (STORE_UNAVAILABLE, after the
   * retries beneath): readOrder() no longer asks it, so reads, stats and listings do
   * not wait out the retries again on every call (a dead server would slow each one
   * by its timeouts). Callers start from this error: such a destination counts as one
   * that did not answer (a stat is no "not there", a listing is incomplete).
   */
  private unreachable(): LifeboatError | undefined {
    return [...this.down.values()].find(isUnreachable);
  }

  /**
   * Destinations up first, in configured order, then those left out (they may answer
   * reads) except those that could not be reached. One left out for another reason
   * (full, refusing writes) is still asked: it may hold what the others lack.
   */
  private readOrder(): Store[] {
    return [...this.up(), ...this.stores.filter((s) => this.down.has(s) && !isUnreachable(this.down.get(s) as LifeboatError))];
  }
}

function isUnreachable(why: LifeboatError): boolean {
  return why.code === 'STORE_UNAVAILABLE';
}

function asLifeboatError(err: unknown): LifeboatError {
  return isLifeboatError(err) ? err : new LifeboatError('FAILED', err instanceof Error ? err.message : String(err), { cause: err });
}

/** The id in a config object (plain JSON: docs/format.md), or its bytes when it has none. */
function repositoryId(config: Uint8Array): string {
  try {
    const id = (JSON.parse(Buffer.from(config).toString('utf8')) as { id?: unknown }).id;
    if (typeof id === 'string') return id;
  } catch {
    // compared as bytes below
  }
  return Buffer.from(config).toString('base64');
}
