/** A pool of restore workers: one pack range per job, next idle worker takes it. */
import type { Worker } from 'node:worker_threads';
import { LifeboatError } from '../../errors.js';
import type { RestoreJob, RestoreReply, RestoreWorkerInit } from './restore-protocol.js';
import { startWorker } from './worker-url.js';

/**
 * A restore worker allocates little JavaScript (each job's list of blobs and targets)
 * but V8 lets its young generation grow to ~32 MB, every page of it touched: 4 MB
 * keeps each worker's heap at ~16 MB instead of ~41 at the same CPU time
 * (docs/performance.md, "Restore memory").
 */
const YOUNG_MB = 4;

interface Slot {
  worker: Worker;
  busy: boolean;
}

export class RestorePool {
  private readonly slots: Slot[] = [];
  private readonly waiting: Array<() => void> = [];
  private readonly pending = new Map<number, { resolve: (n: number) => void; reject: (e: unknown) => void; slot: Slot }>();
  private nextJob = 1;
  /** Why the pool cannot run jobs any more (a worker died): every job from then on fails with it. */
  private broken: unknown;

  /**
   * One worker starts at once (it boots while the main thread plans); the others as
   * jobs need them, up to `threads`: a restore of one small pack starts one.
   */
  constructor(
    private readonly init: RestoreWorkerInit,
    private readonly threads: number,
  ) {
    if (!(threads >= 1)) throw new Error(`a restore needs at least one worker thread (asked for ${threads})`);
    this.spawn();
  }

  private spawn(): Slot {
    const slot: Slot = { worker: startWorker(import.meta.url, 'restore-worker', this.init, { maxYoungGenerationSizeMb: YOUNG_MB }), busy: false };
    slot.worker.on('message', (r: RestoreReply) => this.reply(r));
    slot.worker.on('error', (err) => this.lose(slot, err));
    slot.worker.on('exit', (code) => {
      if (!this.closing) this.lose(slot, new Error(`restore worker exited (code ${code})`));
    });
    this.slots.push(slot);
    return slot;
  }

  /**
   * A worker died: its job fails, and so does every job after it. A job posted to it
   * would never be answered, and one waiting for it to be idle would wait forever (the
   * restore would hang, or its process exit having written part of the target).
   */
  private lose(slot: Slot, err: unknown): void {
    this.broken ??= err;
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    for (const [id, p] of this.pending) {
      if (p.slot !== slot) continue;
      this.pending.delete(id);
      p.reject(err);
    }
    for (const wake of this.waiting.splice(0)) wake();
  }

  private reply(r: RestoreReply): void {
    const p = this.pending.get(r.job);
    if (!p) return;
    this.pending.delete(r.job);
    p.slot.busy = false;
    this.waiting.shift()?.();
    if (r.error === undefined) p.resolve(r.written ?? 0);
    // `done`: files the failed job had finished, so they are not listed as incomplete.
    else if (r.corrupt) p.reject(Object.assign(new LifeboatError('CORRUPT', r.error, { hint: 'run `lifeboat check --read-data`; nothing unauthenticated was written' }), { done: r.done ?? [] }));
    else p.reject(Object.assign(new Error(r.error), { code: r.code, done: r.done ?? [] }));
  }

  /** Runs a job on the next idle worker; waits for one when all are busy. */
  async run(job: Omit<RestoreJob, 'job'>): Promise<number> {
    if (this.broken !== undefined) throw this.broken;
    let slot = this.slots.find((s) => !s.busy) ?? (this.slots.length < this.threads ? this.spawn() : undefined);
    while (!slot) {
      await new Promise<void>((r) => this.waiting.push(r));
      if (this.broken !== undefined) throw this.broken;
      slot = this.slots.find((s) => !s.busy);
    }
    slot.busy = true;
    const id = this.nextJob++;
    const s = slot;
    return new Promise<number>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot: s });
      // Hand the bytes over without a copy when they own their whole buffer.
      const d = job.data;
      const transfer = d.byteOffset === 0 && d.byteLength === d.buffer.byteLength ? [d.buffer as ArrayBuffer] : [];
      s.worker.postMessage({ ...job, job: id }, transfer);
    });
  }

  private closing = false;

  async close(): Promise<void> {
    this.closing = true;
    // A job after this would go to a worker that is gone, and wait forever.
    this.broken ??= new Error('the restore workers were stopped');
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
