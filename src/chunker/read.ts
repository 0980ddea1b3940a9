/**
 * Cutting a byte range of an open file into content-defined chunks inside one
 * caller-owned buffer. Backup (in the chunk workers) and --delta restore (comparing
 * a file with a snapshot's blob ids) must cut exactly alike, so both use this.
 */
import { readSync } from 'node:fs';
import type { FastCDC } from './fastcdc.js';

/** A read of the file failed (as opposed to what the caller did with its chunks). */
export class FileReadError extends Error {
  constructor(readonly errno: NodeJS.ErrnoException) {
    super(errno.message);
  }
}

/** The buffer and how much of it is in use; `end` may carry over between calls. */
export interface ChunkBuffer {
  buf: Buffer;
  end: number;
}

/**
 * Reads bytes [from, to) of `fd` (to the end of the file at most) and hands each
 * chunk to `onChunk` as a view into `state.buf`; `onChunk` returning false stops
 * early. `beforeReuse` is awaited before the buffer is compacted, so a caller that
 * keeps views can use them up first. Chunks start at `from`: a cut always falls there.
 */
export async function chunkRange(
  fd: number,
  state: ChunkBuffer,
  chunker: FastCDC,
  from: number,
  to: number,
  onChunk: (view: Buffer) => boolean | void,
  beforeReuse: () => Promise<void> | void,
): Promise<{ size: number; stopped: boolean }> {
  const { buf } = state;
  let start = state.end;
  let eof = false;
  let pos = from;
  let size = 0;
  for (;;) {
    while (!eof && state.end < buf.length) {
      let n: number;
      try {
        n = readSync(fd, buf, state.end, Math.min(buf.length - state.end, to - pos), pos);
      } catch (err) {
        throw new FileReadError(err as NodeJS.ErrnoException);
      }
      if (n === 0) eof = true;
      else {
        state.end += n;
        pos += n;
      }
    }
    while (start < state.end) {
      const cut = chunker.cut(buf, start, state.end, eof);
      if (cut < 0) break;
      const go = onChunk(buf.subarray(start, cut));
      size += cut - start;
      start = cut;
      if (go === false) return { size, stopped: true };
    }
    if (eof && start >= state.end) return { size, stopped: false };
    await beforeReuse();
    buf.copy(buf, 0, start, state.end);
    state.end -= start;
    start = 0;
  }
}
