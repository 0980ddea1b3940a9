/**
 * The restore worker thread: takes a byte range of a pack, authenticates each blob in
 * it (AES-GCM tag, then the HMAC id against the plaintext) and only then writes it to
 * its target files, relative to the target's directory descriptor. Files that are one
 * blob are created under a temporary name, written, given their metadata and renamed
 * into place here in one go; larger files were pre-created (under their temporary
 * names) by the main thread, which renames them once every piece is written.
 */
import { closeSync, constants as C, fchmodSync, fchownSync, futimesSync, writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { blobId, importKey, unsealInto } from '../../codec/crypto.js';
import { ReusableDecompressor } from '../../codec/compression.js';
import { nsToSeconds } from '../../sources/files/metadata.js';
import { createFileAt, DirCache, openFileAt, renameAt } from '../../util/safe-fs.js';
import { collectYoung } from '../../util/gc.js';
import type { BlobTarget, RestoreJob, RestoreWorkerInit, WholeFile } from './restore-protocol.js';

const init = workerData as RestoreWorkerInit;
const key = importKey(init.key);
const port = parentPort!;
const isRoot = process.getuid?.() === 0;
const uid = process.getuid?.();
const gid = process.getgid?.();
/** This thread's own directory descriptors below the target (never shared, so never closed under another thread). */
const dirs = new DirCache(init.rootFd, 64);
/** Each blob's plaintext is decoded into this one buffer: it is checked and written, then dead. */
const plainBuf = new ReusableDecompressor();

/**
 * A one-blob file: created exclusively under its temporary name, written, given its
 * owner, mode and times on the descriptor, and only then renamed to its real name,
 * so a file under its real name is always complete.
 */
function createWhole(t: BlobTarget, data: Uint8Array, meta: WholeFile & { name: string }): void {
  const dirFd = dirs.dir(t.dir);
  const fd = createFileAt(dirFd, t.tmp);
  try {
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done);
    // A new file already belongs to us; chown only when the owner differs.
    if (isRoot && (meta.uid !== uid || meta.gid !== gid)) fchownSync(fd, meta.uid, meta.gid);
    // chown clears setuid/setgid bits, so the mode comes after it.
    fchmodSync(fd, meta.mode);
    futimesSync(fd, nsToSeconds(meta.atime ?? meta.mtime), nsToSeconds(meta.mtime));
  } finally {
    closeSync(fd);
  }
  renameAt(dirFd, t.tmp, dirFd, meta.name);
}

/** Writes a piece of a larger file into its temporary file (created by the main thread). */
function writeAt(t: BlobTarget, data: Uint8Array): void {
  const fd = openFileAt(dirs.dir(t.dir), t.tmp, C.O_WRONLY);
  try {
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done, t.offset + done);
  } finally {
    closeSync(fd);
  }
}

function run(job: RestoreJob, done: number[]): number {
  const data = Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength);
  let written = 0;
  for (const b of job.blobs) {
    const id = Buffer.from(b.id.buffer, b.id.byteOffset, 32);
    const sealed = data.subarray(b.offset - job.base, b.offset - job.base + b.length);
    const what = `blob ${id.toString('hex').slice(0, 16)} in ${job.packKey}`;
    const plain = unsealInto(plainBuf, key, sealed, what, { kind: 'data' }, b.maxPlain);
    if (!blobId(key, plain).equals(id)) {
      throw Object.assign(new Error(`${what} does not match its id`), { corrupt: true });
    }
    for (const t of b.targets) {
      if (t.whole) {
        createWhole(t, plain, t.whole);
        done.push(t.file);
      } else writeAt(t, plain);
      written += plain.length;
    }
  }
  return written;
}

port.on('message', (job: RestoreJob) => {
  const done: number[] = [];
  try {
    port.postMessage({ job: job.job, written: run(job, done) });
  } catch (err) {
    const e = err as Error & { code?: string; corrupt?: boolean };
    port.postMessage({
      job: job.job,
      error: e.message,
      corrupt: e.corrupt === true || (e as { name?: string }).name === 'LifeboatError',
      code: e.code,
      done,
    });
  }
  // The job's pack range, decrypted and decompressed blobs are all dead now: free
  // them before the next job arrives (src/util/gc.ts).
  collectYoung();
});
