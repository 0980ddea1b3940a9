/**
 * In-memory store: a first-class driver for tests and for `memory:NAME` repositories
 * that live as long as the process. Named stores are shared within the process so a
 * test can open the same repository twice.
 */
import { LifeboatError } from '../../errors.js';
import { assertKey, type ByteRange, type ObjectInfo, type PutOptions, type Store } from '../store.js';

const named = new Map<string, Map<string, Uint8Array>>();

export class MemoryStore implements Store {
  readonly location: string;
  private readonly objects: Map<string, Uint8Array>;

  constructor(name?: string) {
    this.location = `memory:${name ?? ''}`;
    if (name === undefined) {
      this.objects = new Map();
    } else {
      let objects = named.get(name);
      if (!objects) named.set(name, (objects = new Map()));
      this.objects = objects;
    }
  }

  async put(key: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    assertKey(key);
    if (opts.ifAbsent && this.objects.has(key)) {
      throw new LifeboatError('ALREADY_EXISTS', `${this.location}: ${key} already exists`);
    }
    this.objects.set(key, Uint8Array.from(data));
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    assertKey(key);
    const data = this.objects.get(key);
    if (!data) throw new LifeboatError('NOT_FOUND', `${this.location}: ${key} not found`);
    if (!range) return Uint8Array.from(data);
    if (range.offset < 0 || range.length < 0 || range.offset + range.length > data.length) {
      throw new LifeboatError('CORRUPT', `${this.location}: ${key} is shorter than the range read`);
    }
    return data.slice(range.offset, range.offset + range.length);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    assertKey(key);
    const data = this.objects.get(key);
    return data ? { key, size: data.length } : undefined;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for (const [key, data] of [...this.objects]) {
      if (key.startsWith(prefix)) yield { key, size: data.length };
    }
  }

  async delete(key: string): Promise<void> {
    assertKey(key);
    this.objects.delete(key);
  }

  async close(): Promise<void> {}
}
