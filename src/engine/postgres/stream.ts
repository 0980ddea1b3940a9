/**
 * Continuous WAL streaming: drives pg_receivewal on a physical replication slot (so
 * the server keeps WAL until it is received) into a spool directory and ships it to
 * the repository every interval — completed segments once, the segment being
 * written as a `.partial` object replaced each time it grows. The data-loss window is
 * then about one interval, not one 16 MiB segment. pg_receivewal is restarted with
 * back-off when the connection drops.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { parseWalName, validateSegment } from '../../sources/postgres/wal.js';
import { streamSource, timelineDir } from './names.js';
import { runTool } from '../../util/process.js';

export interface PgStreamOptions {
  name: string;
  dsn: string;
  slot?: string;
  spool?: string;
  intervalMs?: number;
  /** Directory holding pg_receivewal (default: found on PATH). */
  binDir?: string;
  signal: AbortSignal;
  onEvent?: (e: StreamEvent) => void;
}

export type StreamEvent =
  | { kind: 'segment'; file: string }
  | { kind: 'partial'; file: string; bytes: number }
  | { kind: 'receiver-exit'; code: number | null; stderr: string; restartInMs: number };

export async function pgStream(repo: Repository, opts: PgStreamOptions): Promise<void> {
  const source = streamSource(opts.name);
  const slot = opts.slot ?? `lifeboat_${opts.name.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`;
  const spool = path.resolve(opts.spool ?? path.join(os.tmpdir(), `lifeboat-stream-${opts.name}`));
  const bin = (b: string) => (opts.binDir ? path.join(opts.binDir, b) : b);
  await fs.mkdir(spool, { recursive: true, mode: 0o700 });

  const created = await runTool(bin('pg_receivewal'), ['--create-slot', '--if-not-exists', '-S', slot, '-d', opts.dsn]);
  if (created.code !== 0) {
    throw new LifeboatError('SOURCE_UNAVAILABLE', `cannot create replication slot ${slot}: ${created.stderr.trim().split('\n')[0] ?? ''}`, {
      hint: 'the role needs REPLICATION, pg_hba.conf a "replication" line, and max_wal_senders > 0',
    });
  }

  const shipped = new Map<string, number>(); // partial file -> mtime shipped
  const sync = async (): Promise<void> => {
    for (const file of (await fs.readdir(spool)).sort()) {
      let wal;
      try {
        wal = parseWalName(file);
      } catch {
        continue;
      }
      const full = path.join(spool, file);
      if (wal.kind === 'segment' || wal.kind === 'history') {
        const data = await fs.readFile(full);
        if (wal.kind === 'segment') validateSegment(wal, data, {});
        try {
          await repo.putLog(source, timelineDir(wal.timeline), file, data);
        } catch (err) {
          // A retransmitted segment may differ in its zero tail; the first copy stands.
          if (!(err instanceof LifeboatError && err.code === 'ALREADY_EXISTS')) throw err;
        }
        if (wal.kind === 'segment') await repo.store.delete(`logs/${source}/${timelineDir(wal.timeline)}/${file}.partial`);
        await fs.rm(full);
        opts.onEvent?.({ kind: 'segment', file });
      } else if (wal.kind === 'partial') {
        const st = await fs.stat(full).catch(() => undefined);
        if (!st || shipped.get(file) === st.mtimeMs) continue;
        const data = await fs.readFile(full);
        await repo.putLog(source, timelineDir(wal.timeline), file, data, { replace: true });
        shipped.set(file, st.mtimeMs);
        opts.onEvent?.({ kind: 'partial', file, bytes: data.length });
      }
    }
  };

  let child: ChildProcess | undefined;
  let backoff = 1000;
  const startReceiver = (): void => {
    let stderr = '';
    child = spawn(bin('pg_receivewal'), ['-D', spool, '-S', slot, '-d', opts.dsn, '--synchronous', '--no-loop', '-s', '1'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const started = Date.now();
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => {
      child = undefined;
      if (opts.signal.aborted) return;
      if (Date.now() - started > 60_000) backoff = 1000;
      opts.onEvent?.({ kind: 'receiver-exit', code, stderr: stderr.trim(), restartInMs: backoff });
      setTimeout(() => !opts.signal.aborted && startReceiver(), backoff).unref();
      backoff = Math.min(backoff * 2, 30_000);
    });
  };
  startReceiver();

  const interval = opts.intervalMs ?? 1000;
  try {
    while (!opts.signal.aborted) {
      await sync();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, interval);
        opts.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  } finally {
    const c = child as ChildProcess | undefined;
    if (c) {
      const closed = new Promise((r) => c.once('close', r));
      c.kill('SIGTERM');
      await closed;
    }
    // Final sync on a clean stop: whatever pg_receivewal flushed is shipped.
    await sync();
  }
}
