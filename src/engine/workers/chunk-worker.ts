/**
 * The chunk worker thread: file bytes in, finished packs out. Runs the CPU-bound
 * stages (FastCDC, HMAC ids, compression, AES-GCM, the pack's SHA-256) off the main
 * thread so both cores work. Each worker fills a pack of its own, written straight
 * to a file, and hands over the file; the main thread only stores it. Reads and
 * writes are synchronous: this thread has nothing else to do meanwhile.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants as C, fstatSync, openSync, rmSync, writeSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { FastCDC, gearTable } from '../../chunker/fastcdc.js';
import { chunkRange, FileReadError, type ChunkBuffer } from '../../chunker/read.js';
import { ReusableCompressor } from '../../codec/compression.js';
import { blobId, importKey, SEAL_OVERHEAD, sealBody, sealParts, type SealContext } from '../../codec/crypto.js';
import { BLOB_DATA, PACK_TARGET_SIZE } from '../../repo/format.js';
import { encodeEntries, packFooter, type PackEntry } from '../../repo/pack/pack.js';
import { collectYoung } from '../../util/gc.js';
import type { FileResult, FromWorker, JobFile, ToWorker, WorkerInit } from './protocol.js';

const init = workerData as WorkerInit;
const key = importKey(init.key);
const DATA_CTX: SealContext = { kind: 'data' };
const chunker = new FastCDC(gearTable(key.idKey), init.chunker);
const port = parentPort!;

/**
 * Chunks are views into one read buffer, never copies: the window of chunks waiting
 * for the "which are new?" answer is sealed before the buffer is compacted or
 * reused. Room for a window of about 4 MiB plus one maximal chunk of look-ahead (an
 * 8 MiB window held 4 MiB more per worker for no measurable speed: one question to the
 * main thread per ~4 MiB read costs microseconds).
 */
const state: ChunkBuffer = { buf: Buffer.allocUnsafeSlow(4 * 1024 * 1024 + init.chunker.max), end: 0 };
let pendingNeed: ((need: Uint8Array) => void) | undefined;

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

/**
 * A pack is written to a file of its own as it is filled, each sealed blob appended
 * (one writev) and hashed as it is sealed, and the file is handed to the main thread
 * when the pack is full: no pack is ever held in memory (16 MiB less per worker, and
 * as much less for each pack waiting for an upload slot; docs/performance.md). The
 * bytes are the same as when packs were built in memory, so the pack id, the SHA-256
 * of those bytes, is too. Not fsynced here: the store does that before naming it.
 */
class Pack {
  readonly name = `${randomBytes(12).toString('hex')}.tmp`;
  private readonly fd: number;
  /** Descriptors are the process's, shared by every thread: one closed must never be closed again. */
  private closed = false;
  entries: PackEntry[] = [];
  size = 0;
  hash = createHash('sha256');

  constructor() {
    this.fd = openSync(join(init.spillDir, this.name), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
  }

  /** Appends `parts` at the end of the file, and to the hash. */
  private append(parts: Buffer[]): number {
    let length = 0;
    for (const p of parts) {
      this.hash.update(p);
      length += p.length;
    }
    let done = writevSync(this.fd, parts, this.size);
    // A regular file takes the whole writev unless the disk is full; finish piece by piece.
    for (let at = 0, i = 0; done < length && i < parts.length; i++) {
      const p = parts[i]!;
      if (done < at + p.length) {
        let off = done - at;
        while (off < p.length) off += writeSync(this.fd, p, off, p.length - off, this.size + at + off);
        done = at + p.length;
      }
      at += p.length;
    }
    this.size += length;
    return length;
  }

  /** Seals `body` and appends it (the ciphertext is written where cipher.update put it, not copied). */
  add(id: Buffer, codec: number, body: Uint8Array, rawLength: number): void {
    const offset = this.size;
    const length = this.append(sealParts(key, codec, body, DATA_CTX));
    this.entries.push({ type: BLOB_DATA, id, offset, length, rawLength });
  }

  /** Closes the file and posts it; from here on it is the main thread's to store and remove. */
  send(job: number): void {
    if (this.entries.length === 0) {
      this.discard();
      return;
    }
    this.append([packFooter(key, this.entries)]);
    this.close();
    const packId = this.hash.digest();
    const entries = encodeEntries(this.entries);
    post({ t: 'pack', job, pack: { packId, file: this.name, size: this.size, entries } });
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  /** Closes and removes the file (a job that failed); best effort: the spill directory goes as a whole at the end. */
  discard(): void {
    try {
      this.close();
    } catch {
      // Nothing more to do with it.
    }
    try {
      rmSync(join(init.spillDir, this.name), { force: true });
    } catch {
      // Left for the removal of the spill directory.
    }
  }
}

/**
 * The open pack, opened when its first blob is sealed rather than when the last one
 * is sent: after a pack that ends a window, no file is started until the next
 * window's "which are new?" is answered.
 */
let pack: Pack | undefined;
const compressor = new ReusableCompressor(init.compression);

function sendPack(job: number): void {
  const p = pack;
  pack = undefined;
  if (!p) return;
  try {
    p.send(job);
  } catch (err) {
    p.discard();
    throw err;
  }
}

/** After a failure: the open pack's file goes, so a failed backup leaves none behind. */
function discardPack(): void {
  const p = pack;
  pack = undefined;
  p?.discard();
}

class Window {
  chunks: Buffer[] = [];
  ids: Buffer[] = [];

  add(chunk: Buffer): Buffer {
    const id = blobId(key, chunk);
    this.chunks.push(chunk);
    this.ids.push(id);
    return id;
  }

  async flush(job: number): Promise<void> {
    if (this.chunks.length === 0) return;
    const need = await new Promise<Uint8Array>((resolve) => {
      pendingNeed = resolve;
      post({ t: 'ids', job, ids: Buffer.concat(this.ids) });
    });
    this.chunks.forEach((chunk, i) => {
      if (!need[i]) return;
      // The body may be a view into the compressor's buffer: sealed before the next chunk.
      const { codec, body } = sealBody(chunk, init.compression, (d) => compressor.compress(d));
      if (pack && pack.size > 0 && pack.size + SEAL_OVERHEAD + body.length > PACK_TARGET_SIZE) sendPack(job);
      pack ??= new Pack();
      pack.add(this.ids[i]!, codec, body, chunk.length);
      if (pack.size >= PACK_TARGET_SIZE) sendPack(job);
    });
    this.chunks = [];
    this.ids = [];
    // Each sealed chunk left its AES-GCM output (written to the pack) dead: free it now,
    // not when V8's external-memory limit finally forces a GC (src/util/gc.ts).
    collectYoung();
  }
}

function failure(err: unknown, size: number): FileResult {
  const e = err as NodeJS.ErrnoException;
  return { ids: new Uint8Array(0), size, error: e.message, ...(e.code ? { errorCode: e.code } : {}) };
}

/** Kinds of file by the type bits of st_mode, for messages. */
function kindOf(mode: bigint): string {
  switch (Number(mode & 0o170000n)) {
    case 0o120000:
      return 'a symlink';
    case 0o010000:
      return 'a FIFO';
    case 0o040000:
      return 'a directory';
    case 0o140000:
      return 'a socket';
    case 0o020000:
    case 0o060000:
      return 'a device';
    default:
      return 'another file';
  }
}

/**
 * Opens a file the scan found, never following a symlink (O_NOFOLLOW) and never
 * waiting on a FIFO (O_NONBLOCK), and checks it is still the regular file the scan's
 * lstat saw. A local user who swaps it for a symlink to a root-only file, or for a
 * FIFO, gets an error for that file, not the other file's bytes or a hung backup.
 */
function openScanned(path: string, expect: JobFile['expect']): number {
  let fd: number;
  try {
    fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw Object.assign(new Error(`${path}: changed since it was scanned: it is now a symlink; not read`), { code: 'ECHANGED' });
    }
    throw err;
  }
  const st = fstatSync(fd, { bigint: true });
  const kind = Number(st.mode & 0o170000n);
  let why: string | undefined;
  if (kind !== 0o100000) why = `it is now ${kindOf(st.mode)}`;
  else if (expect && (st.dev.toString() !== expect.dev || st.ino.toString() !== expect.ino)) why = 'it was replaced by another file';
  if (why) {
    closeSync(fd);
    throw Object.assign(new Error(`${path}: changed since it was scanned: ${why}; not read`), { code: 'ECHANGED' });
  }
  return fd;
}

async function chunkFile(path: string, range: JobFile['range'], job: number, win: Window, expect?: JobFile['expect']): Promise<FileResult> {
  const ids: Buffer[] = [];
  let fd: number;
  try {
    fd = openScanned(path, expect);
  } catch (err) {
    return failure(err, 0);
  }
  try {
    const from = range?.offset ?? 0;
    const { size } = await chunkRange(
      fd,
      state,
      chunker,
      from,
      range ? from + range.length : Infinity,
      (view) => {
        ids.push(win.add(view));
      },
      // The buffer is about to be reused: seal the window first (its views die here).
      () => win.flush(job),
    );
    return { ids: Buffer.concat(ids), size };
  } catch (err) {
    // A read error fails this file only (chunks of it already in the window are
    // sealed all the same: ids once reserved must always be stored). Anything else
    // (sealing, packing) is not the file's fault: it fails the whole job, so no
    // snapshot can name blobs that were reserved but never stored.
    if (err instanceof FileReadError) return failure(err.errno, 0);
    throw err;
  } finally {
    closeSync(fd);
  }
}

/** The job's failure for the main thread, with the system error's code (ENOSPC writing a pack file, say). */
function fatal(job: number, err: unknown): FromWorker {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return { t: 'fatal', job, message: err instanceof Error ? err.stack ?? err.message : String(err), ...(typeof code === 'string' ? { code } : {}) };
}

async function runJob(job: number, files: JobFile[]): Promise<void> {
  const win = new Window();
  const results: FileResult[] = [];
  for (const f of files) results.push(await chunkFile(f.path, f.range, job, win, f.expect));
  await win.flush(job);
  state.end = 0;
  post({ t: 'done', job, files: results });
}

port.on('message', (msg: ToWorker) => {
  if (msg.t === 'need') {
    const resolve = pendingNeed;
    pendingNeed = undefined;
    resolve?.(msg.need);
    return;
  }
  if (msg.t === 'flush') {
    try {
      sendPack(msg.job);
    } catch (err) {
      discardPack();
      post(fatal(msg.job, err));
      return;
    }
    post({ t: 'flushed', job: msg.job });
    return;
  }
  runJob(msg.job, msg.files).catch((err: unknown) => {
    discardPack();
    post(fatal(msg.job, err));
  });
});
