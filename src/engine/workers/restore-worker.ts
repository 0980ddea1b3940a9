/**
 * The restore worker thread: takes a byte range of a pack, authenticates each blob in
 * it (AES-GCM tag, then the HMAC id against the plaintext) and only then writes it to
 * its target files. Files that are one blob are created, written and given their
 * metadata here in one go; larger files were pre-created by the main thread.
 */
import { closeSync, constants as C, fchmodSync, fchownSync, futimesSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { blobId, importKey, unseal } from '../../codec/crypto.js';
import { nsToSeconds } from '../../sources/files/metadata.js';
import type { RestoreJob, RestoreWorkerInit, WholeFile } from './restore-protocol.js';

const init = workerData as RestoreWorkerInit;
const key = importKey(init.key);
const port = parentPort!;
const isRoot = process.getuid?.() === 0;
const uid = process.getuid?.();
const gid = process.getgid?.();
const CREATE = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;

/**
 * Creates a file for writing as a new inode. Whatever is at the path goes first: a
 * symlink would be followed, and a hard link would share its inode with a file
 * outside the target, so opening an existing path for writing is never safe.
 */
function create(path: string): number {
  try {
    unlinkSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR' || code === 'EPERM') rmSync(path, { recursive: true, force: true });
    else if (code !== 'ENOENT') throw err;
  }
  return openSync(path, CREATE, 0o600);
}

function createWhole(path: string, data: Uint8Array, meta: WholeFile): void {
  const fd = create(path);
  try {
    writeSync(fd, data);
    // A new file already belongs to us; chown only when the owner differs.
    if (isRoot && (meta.uid !== uid || meta.gid !== gid)) fchownSync(fd, meta.uid, meta.gid);
    fchmodSync(fd, meta.mode);
    futimesSync(fd, nsToSeconds(meta.atime ?? meta.mtime), nsToSeconds(meta.mtime));
  } finally {
    closeSync(fd);
  }
}

function writeAt(path: string, data: Uint8Array, offset: number): void {
  const fd = openSync(path, C.O_WRONLY | C.O_NOFOLLOW);
  try {
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done, offset + done);
  } finally {
    closeSync(fd);
  }
}

function run(job: RestoreJob): number {
  const data = Buffer.from(job.data.buffer, job.data.byteOffset, job.data.byteLength);
  let written = 0;
  for (const b of job.blobs) {
    const id = Buffer.from(b.id.buffer, b.id.byteOffset, 32);
    const sealed = data.subarray(b.offset - job.base, b.offset - job.base + b.length);
    const what = `blob ${id.toString('hex').slice(0, 16)} in ${job.packKey}`;
    const plain = unseal(key, sealed, what, { kind: 'data' }, b.maxPlain);
    if (!blobId(key, plain).equals(id)) {
      throw Object.assign(new Error(`${what} does not match its id`), { corrupt: true });
    }
    for (const t of b.targets) {
      if (t.whole) createWhole(t.path, plain, t.whole);
      else writeAt(t.path, plain, t.offset);
      written += plain.length;
    }
  }
  return written;
}

port.on('message', (job: RestoreJob) => {
  try {
    port.postMessage({ job: job.job, written: run(job) });
  } catch (err) {
    const e = err as Error & { code?: string; corrupt?: boolean };
    port.postMessage({
      job: job.job,
      error: e.message,
      corrupt: e.corrupt === true || (e as { name?: string }).name === 'LifeboatError',
      code: e.code,
    });
  }
});
