/**
 * The chunk worker thread: file bytes in, sealed blobs out. Runs the CPU-bound
 * stages (FastCDC, HMAC ids, compression, AES-GCM) off the main thread so both cores
 * work. Reads are synchronous: this thread has nothing else to do meanwhile.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { FastCDC, gearTable } from '../../chunker/fastcdc.js';
import { blobId, masterKeyFrom, seal } from '../../codec/crypto.js';
import type { FileResult, FromWorker, SealedBlob, ToWorker, WorkerInit } from './protocol.js';

const init = workerData as WorkerInit;
const key = masterKeyFrom(Buffer.from(init.encKey), Buffer.from(init.idKey));
const chunker = new FastCDC(gearTable(key.idKey), init.chunker);
const port = parentPort!;

/** Ask about (and seal) chunks in windows of about 16 MiB: bounded memory, few round trips. */
const WINDOW_BYTES = 16 * 1024 * 1024;
const READ_BUF = Math.max(2 * init.chunker.max, 4 * 1024 * 1024);

let buf = Buffer.allocUnsafeSlow(READ_BUF);
let pendingNeed: ((need: Uint8Array) => void) | undefined;

function post(msg: FromWorker): void {
  port.postMessage(msg);
}

class Window {
  chunks: Buffer[] = [];
  ids: Buffer[] = [];
  bytes = 0;

  add(chunk: Buffer): Buffer {
    const id = blobId(key, chunk);
    this.chunks.push(chunk);
    this.ids.push(id);
    this.bytes += chunk.length;
    return id;
  }

  async flush(job: number): Promise<void> {
    if (this.chunks.length === 0) return;
    const need = await new Promise<Uint8Array>((resolve) => {
      pendingNeed = resolve;
      post({ t: 'ids', job, ids: Buffer.concat(this.ids) });
    });
    const blobs: SealedBlob[] = [];
    this.chunks.forEach((chunk, i) => {
      if (need[i]) blobs.push({ id: this.ids[i]!, sealed: seal(key, chunk, init.compression), rawLength: chunk.length });
    });
    if (blobs.length > 0) post({ t: 'blobs', job, blobs });
    this.chunks = [];
    this.ids = [];
    this.bytes = 0;
  }
}

async function chunkFile(path: string, job: number, win: Window): Promise<FileResult> {
  const ids: Buffer[] = [];
  let size = 0;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ids: new Uint8Array(0), size: 0, error: e.message, ...(e.code ? { errorCode: e.code } : {}) };
  }
  try {
    let start = 0;
    let end = 0;
    let eof = false;
    for (;;) {
      while (!eof && end < buf.length) {
        const n = readSync(fd, buf, end, buf.length - end, null);
        if (n === 0) eof = true;
        else end += n;
      }
      while (start < end) {
        const cut = chunker.cut(buf, start, end, eof);
        if (cut < 0) break;
        const chunk = Buffer.from(buf.subarray(start, cut));
        size += chunk.length;
        ids.push(win.add(chunk));
        start = cut;
        if (win.bytes >= WINDOW_BYTES) await win.flush(job);
      }
      if (eof && start >= end) break;
      buf.copy(buf, 0, start, end);
      end -= start;
      start = 0;
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { ids: new Uint8Array(0), size, error: e.message, ...(e.code ? { errorCode: e.code } : {}) };
  } finally {
    closeSync(fd);
  }
  return { ids: Buffer.concat(ids), size };
}

async function runJob(job: number, files: Array<{ path: string }>): Promise<void> {
  const win = new Window();
  const results: FileResult[] = [];
  for (const f of files) results.push(await chunkFile(f.path, job, win));
  await win.flush(job);
  post({ t: 'done', job, files: results });
}

port.on('message', (msg: ToWorker) => {
  if (msg.t === 'need') {
    const resolve = pendingNeed;
    pendingNeed = undefined;
    resolve?.(msg.need);
    return;
  }
  runJob(msg.job, msg.files).catch((err: unknown) => {
    post({ t: 'fatal', job: msg.job, message: err instanceof Error ? err.stack ?? err.message : String(err) });
  });
});
