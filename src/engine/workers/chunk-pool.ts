/**
 * A pool of chunk workers. Jobs (batches of files) queue here and go to the next
 * idle worker; the pool answers each worker's "which of these ids are new?" and
 * hands finished packs (files: protocol.ts) to the caller. Messages from one worker are handled strictly in
 * order, so a worker's next question is answered only after its previous blobs are
 * accepted: that is the back-pressure that keeps memory bounded.
 */
import type { Worker } from 'node:worker_threads';
import { packWriteError } from '../../repo/pack/pack-writer.js';
import type { FileResult, FinishedPack, FromWorker, JobFile, ToWorker, WorkerInit } from './protocol.js';
import { startWorker } from './worker-url.js';

export interface ChunkPoolHandlers {
  /** For concatenated 32-byte ids, returns 1 for each id the repository needs. */
  need(ids: Uint8Array): Uint8Array;
  /**
   * Stores a finished pack and removes its file; the returned promise gates the
   * worker's next question.
   */
  acceptPack(pack: FinishedPack): Promise<void>;
  /** Removes the file of a pack that arrived after its job failed (nothing will store it). */
  discardPack(pack: FinishedPack): Promise<void>;
}

interface Job {
  id: number;
  files: JobFile[];
  resolve: (r: FileResult[]) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
  chain: Promise<void>;
}

export class ChunkPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextJob = 1;
  private failure: unknown;

  constructor(
    private readonly init: WorkerInit,
    private readonly size: number,
    private readonly handlers: ChunkPoolHandlers,
  ) {
    // With no worker to take them, jobs would sit in the queue until the process ran
    // out of other work and exited as if the backup had finished.
    if (!(size >= 1)) throw new Error(`a backup needs at least one worker thread (asked for ${size})`);
  }

  /**
   * Starts one more worker. Workers start as jobs need them, up to `size`: a backup
   * where nothing changed reads no file and starts none, one of a few small files
   * (one job) starts one; a large one has a second job queued at once.
   */
  private spawn(): void {
    const { init } = this;
    const worker = startWorker(import.meta.url, 'chunk-worker', init);
    const slot: Slot = { worker, job: undefined, chain: Promise.resolve() };
    worker.on('message', (msg: FromWorker) => {
      slot.chain = slot.chain.then(() => this.handle(slot, msg)).catch((err) => this.fail(err));
    });
    worker.on('error', (err) => this.fail(err));
    // A worker that dies without an 'error' event (killed, out of memory) must not
    // leave its job waiting forever.
    worker.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`chunk worker exited (code ${code})`));
    });
    this.slots.push(slot);
  }

  run(files: JobFile[]): Promise<FileResult[]> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    // A worker that cannot start fails this call before its job is queued.
    if (this.slots.length < this.size && this.slots.every((s) => s.job !== undefined)) {
      try {
        this.spawn();
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextJob++, files, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.job) continue;
      const job = this.queue.shift();
      if (!job) return;
      slot.job = job;
      const msg: ToWorker = { t: 'job', job: job.id, files: job.files };
      slot.worker.postMessage(msg);
    }
  }

  /**
   * Makes every worker send its partly filled pack. Call once all jobs are done;
   * resolves when every pack has been accepted.
   */
  async flush(): Promise<void> {
    await Promise.all(
      this.slots.map(
        (slot) =>
          new Promise<FileResult[]>((resolve, reject) => {
            if (slot.job) throw new Error('flush while a job runs');
            const job: Job = { id: this.nextJob++, files: [], resolve, reject };
            slot.job = job;
            const msg: ToWorker = { t: 'flush', job: job.id };
            slot.worker.postMessage(msg);
          }),
      ),
    );
    if (this.failure !== undefined) throw this.failure;
  }

  private async handle(slot: Slot, msg: FromWorker): Promise<void> {
    const job = slot.job;
    if (!job || job.id !== msg.job) {
      if (msg.t === 'pack') await this.handlers.discardPack(msg.pack);
      return;
    }
    switch (msg.t) {
      case 'ids': {
        const reply: ToWorker = { t: 'need', job: msg.job, need: this.handlers.need(msg.ids) };
        slot.worker.postMessage(reply);
        return;
      }
      case 'pack':
        await this.handlers.acceptPack(msg.pack);
        return;
      case 'flushed':
        slot.job = undefined;
        job.resolve([]);
        this.dispatch();
        return;
      case 'done':
        slot.job = undefined;
        job.resolve(msg.files);
        this.dispatch();
        return;
      case 'fatal':
        // A full disk (or a denied write) where the worker writes its pack file is the
        // operator's to fix, and reported as such (NO_SPACE, PERMISSION), not as a crash.
        // Anything else (a bug) goes out as it is, stack and all.
        if (msg.code) throw packWriteError(Object.assign(new Error(`chunk worker failed: ${msg.message}`), { code: msg.code }), this.init.spillDir);
        throw new Error(`chunk worker failed: ${msg.message}`);
    }
  }

  private fail(err: unknown): void {
    this.failure ??= err;
    for (const slot of this.slots) {
      slot.job?.reject(err);
      slot.job = undefined;
    }
    for (const job of this.queue.splice(0)) job.reject(err);
  }

  private closing = false;

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
