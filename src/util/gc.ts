/**
 * A scavenge (V8's young-generation GC) on demand, for threads that turn over large
 * Buffers with little JavaScript around them (a backup's chunk workers). V8 frees an
 * ArrayBuffer's memory only when a GC finds it dead, and these threads allocate so few
 * JavaScript objects that a scavenge may not come for hundreds of MB of dead buffers;
 * what finally triggers one is V8's external-memory limit (~64 MB above the last GC),
 * per thread. Measured on a first backup (docs/performance.md, "Memory"): a scavenge
 * after each 4 MiB window of chunks lowers the peak RSS by ~40 MB at two workers,
 * at no measurable CPU cost (the young generation holds a few MB).
 *
 * `gc` is exposed through V8's --expose-gc flag, set here at run time and taken from
 * a fresh context (the flag only applies to contexts created after it is set). If
 * that is ever refused, this is a no-op: memory then waits for V8's own GCs, as before.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFn = (opts?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let gcFn: GcFn | null | undefined;

function resolveGc(): GcFn | null {
  const existing = (globalThis as { gc?: GcFn }).gc;
  if (typeof existing === 'function') return existing;
  try {
    setFlagsFromString('--expose-gc');
    const fn = runInNewContext('gc') as unknown;
    return typeof fn === 'function' ? (fn as GcFn) : null;
  } catch {
    return null;
  }
}

/** Runs a scavenge now: frees young ArrayBuffers nothing references any more. */
export function collectYoung(): void {
  if (gcFn === undefined) gcFn = resolveGc();
  gcFn?.({ type: 'minor' });
}

/**
 * A full GC now, for a thread that has just dropped a large, long-lived structure (a
 * restore's batch of plan entries, alive for a second or so: long enough for every
 * scavenge to promote it, so only a full GC frees it, and V8 lets the old generation
 * grow to ~100 MB of such garbage before it runs one). A few ms at these heap sizes.
 */
export function collectAll(): void {
  if (gcFn === undefined) gcFn = resolveGc();
  // No options: Node 20's gc() takes { type: 'major' } for a scavenge (seen with --trace-gc).
  gcFn?.();
}
