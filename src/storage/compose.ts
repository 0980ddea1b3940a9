/**
 * Builds the store a command works on from what the user configured: each
 * destination opened by its scheme and wrapped in retries (and a bandwidth limit
 * when one is set); several destinations joined by `multi` with a write quorum;
 * append-only outermost, so nothing below is ever asked to delete.
 */
import { LifeboatError } from '../errors.js';
import { openStore } from './registry.js';
import type { Store } from './store.js';
import { AppendOnlyStore } from './wrappers/append-only.js';
import { MultiStore } from './wrappers/multi.js';
import { RetryStore } from './wrappers/retry.js';
import { ThrottleStore } from './wrappers/throttle.js';

export interface StoreSpec {
  locations: string[];
  /** Default: every destination. */
  writeQuorum?: number;
  /** KiB/s per destination; 0 or undefined: unlimited. */
  limitUploadKiB?: number;
  limitDownloadKiB?: number;
  appendOnly?: boolean;
  /** Attempts per call for transient failures (LIFEBOAT_STORE_RETRIES; default 6). */
  attempts?: number;
  onDegraded?: (store: Store, err: LifeboatError) => void;
}

export async function openComposite(spec: StoreSpec): Promise<Store> {
  const opened: Store[] = [];
  try {
    for (const loc of spec.locations) {
      let s: Store = await openStore(loc);
      // Throttle inside retry: bytes sent again by a retry are charged again.
      if (spec.limitUploadKiB || spec.limitDownloadKiB) {
        s = new ThrottleStore(s, { upload: (spec.limitUploadKiB ?? 0) * 1024, download: (spec.limitDownloadKiB ?? 0) * 1024 });
      }
      opened.push(new RetryStore(s, spec.attempts !== undefined ? { attempts: spec.attempts } : {}));
    }
  } catch (err) {
    await Promise.all(opened.map((s) => s.close()));
    throw err;
  }
  let store: Store =
    opened.length === 1
      ? (opened[0] as Store)
      : new MultiStore(opened, { writeQuorum: spec.writeQuorum ?? opened.length, ...(spec.onDegraded ? { onDegraded: spec.onDegraded } : {}) });
  if (spec.appendOnly) store = new AppendOnlyStore(store);
  return store;
}
