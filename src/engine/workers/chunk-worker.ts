/**
 * The chunk worker thread: file bytes in, finished packs out. Runs the CPU-bound
 * stages (FastCDC, HMAC ids, compression, AES-GCM, the pack's SHA-256) off the main
 * thread so both cores work. Each worker fills a pack of its own and hands it over
 * whole, zero-copy; the main thread only stores it. Reads are synchronous: this
 * thread has nothing else to do meanwhile.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as C, fstatSync, openSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { FastCDC, gearTable } from '../../chunker/fastcdc.js';
import { chunkRange, FileReadError, type ChunkBuffer } from '../../chunker/read.js';
import { ReusableCompressor } from '../../codec/compression.js';
import { blobId, importKey, SEAL_OVERHEAD, sealBody, sealInto, type SealContext } from '../../codec/crypto.js';
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
 * A pack is built in one buffer, each sealed blob copied in as it is sealed, and that
 * buffer is handed to the main thread: no list of parts held beside it and no second
 * copy of the whole pack when it is finished (16 MiB less per worker at the peak, and
 * as much less garbage per pack; docs/performance.md).
 */
class Pack {
  /** The target and room for a footer: a blob that would go past the target starts the next pack. */
  bytes: Buffer = Buffer.allocUnsafeSlow(PACK_TARGET_SIZE + 64 * 1024);
  entries: PackEntry[] = [];
  size = 0;
  hash = createHash('sha256');

  /** Room for `n` more bytes (a pack of many tiny blobs can outgrow the first guess through its footer). */
  private room(n: number): void {
    if (this.size + n <= this.bytes.length) return;
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.size + n, this.bytes.length * 2));
    this.bytes.copy(bigger, 0, 0, this.size);
    this.bytes = bigger;
  }

  /** Seals `body` straight into the pack's buffer (no sealed copy of its own). */
  add(id: Buffer, codec: number, body: Uint8Array, rawLength: number): void {
    const length = SEAL_OVERHEAD + body.length;
    this.room(length);
    sealInto(key, codec, body, DATA_CTX, this.bytes, this.size);
    this.entries.push({ type: BLOB_DATA, id, offset: this.size, length, rawLength });
    this.hash.update(this.bytes.subarray(this.size, this.size + length));
    this.size += length;
  }

  /** Posts the finished pack; the bytes' buffer is transferred, not copied. */
  send(job: number): void {
    if (this.entries.length === 0) return;
    const footer = packFooter(key, this.entries);
    this.hash.update(footer);
    const packId = this.hash.digest();
    this.room(footer.length);
    footer.copy(this.bytes, this.size);
    const bytes = this.bytes.subarray(0, this.size + footer.length);
    const entries = encodeEntries(this.entries);
    post({ t: 'pack', job, pack: { packId, bytes, entries } }, [bytes.buffer as ArrayBuffer]);
  }
}

/**
 * The open pack, allocated when its first blob is sealed rather than when the last one
 * is sent: after a pack that ends a window, no new buffer is taken until the next
 * window's "which are new?" is answered, and that waits for the sent pack to be
 * accepted (an upload slot), so a worker does not hold a fresh 16 MiB meanwhile.
 */
let pack: Pack | undefined;
const compressor = new ReusableCompressor(init.compression);

function sendPack(job: number): void {
  pack?.send(job);
  pack = undefined;
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
    // Each sealed chunk left its AES-GCM output (copied into the pack) dead: free it now,
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
    sendPack(msg.job);
    post({ t: 'flushed', job: msg.job });
    return;
  }
  runJob(msg.job, msg.files).catch((err: unknown) => {
    post({ t: 'fatal', job: msg.job, message: err instanceof Error ? err.stack ?? err.message : String(err) });
  });
});
