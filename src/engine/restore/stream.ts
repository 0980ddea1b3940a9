/**
 * Streams one file of a snapshot, blob by blob in order, into a Writable (a restore
 * tool's stdin). Each blob is authenticated and checked against its id as it is
 * loaded; the writable's back-pressure paces the reads, and only `readAhead` blobs
 * are fetched ahead of it, so memory stays at a few chunks whatever the file's size.
 */
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import type { TreeNode } from '../../repo/snapshot/tree.js';
import { throttleProgress, type ProgressFn } from '../progress.js';

export interface StreamRestoreOptions {
  /**
   * Blobs fetched ahead of the writer. Two keep a remote store and the consumer both
   * busy (one arriving while one is written) at a cost of two chunks of memory.
   */
  readAhead?: number;
  onProgress?: ProgressFn;
}

/**
 * Writes the content of file `node` to `out` and ends it; resolves to the bytes
 * written. Every blob is looked up before the first byte is written, so a blob
 * missing from the index fails (CORRUPT) before the consumer has seen anything. A
 * blob failing authentication later fails the returned promise and destroys `out`,
 * so the consumer sees a truncated stream, never a wrong one.
 */
export async function restoreStream(
  repo: Pick<Repository, 'loadBlob' | 'locate'>,
  node: TreeNode,
  out: Writable,
  opts: StreamRestoreOptions = {},
): Promise<number> {
  if (node.type !== 'file') throw new LifeboatError('USAGE', `${node.name} is a ${node.type}, not a file`);
  const ids = (node.content ?? []).map((hex) => Buffer.from(hex, 'hex'));
  for (const id of ids) await repo.locate(id);
  const emit = throttleProgress(opts.onProgress);
  const expected = node.size ?? 0;
  let written = 0;
  async function* blobs(): AsyncGenerator<Buffer> {
    const ahead = Math.max(1, opts.readAhead ?? 2);
    const pending: Array<Promise<Buffer>> = [];
    let next = 0;
    const fill = () => {
      while (pending.length < ahead && next < ids.length) {
        const p = repo.loadBlob(ids[next++] as Buffer);
        p.catch(() => {}); // awaited in order below; an early failure must not go unhandled
        pending.push(p);
      }
    };
    fill();
    while (pending.length > 0) {
      const blob = await (pending.shift() as Promise<Buffer>);
      fill();
      written += blob.length;
      emit({ phase: 'restore', files: 0, bytes: written, totalBytes: expected, errors: 0 });
      yield blob;
    }
    if (written !== expected) {
      throw new LifeboatError('CORRUPT', `${node.name}: its blobs hold ${written} bytes, the tree says ${expected}`, {
        hint: 'run `lifeboat check --read-data`',
      });
    }
  }
  // highWaterMark 1 byte: the readable itself buffers at most one blob.
  await pipeline(Readable.from(blobs(), { objectMode: false, highWaterMark: 1 }), out);
  emit({ phase: 'done', files: 1, bytes: written, totalBytes: expected, errors: 0 }, true);
  return written;
}
