/**
 * How a continuous shipper's events are printed (`sqlite replicate`, `redis replicate`,
 * `oplog replicate`): with --json one JSON line each (what the daemon's supervisor
 * reads), otherwise errors and warnings on stderr, an unhealthy status as a line, and
 * what the kind has to say about its own events.
 */
import type { GlobalOptions } from '../context.js';

type Event = { kind: string };
type Problem = { kind: string; message: string; hint?: string };
type Status = { kind: 'status'; healthy: boolean; archivedThrough?: unknown; error?: string };

export function renderReplicateEvent<E extends Event>(e: E, g: GlobalOptions, kindLine: (e: E) => string | undefined, warnings: readonly string[] = []): void {
  if (g.json) {
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
    return;
  }
  if (e.kind === 'error') {
    const p = e as unknown as Problem;
    console.error(`lifeboat: ${p.message}${p.hint ? `\n  hint: ${p.hint}` : ''}`);
    return;
  }
  if (warnings.includes(e.kind)) {
    console.error(`warning: ${(e as unknown as Problem).message}`);
    return;
  }
  if (g.quiet) return;
  if (e.kind === 'status') {
    const s = e as unknown as Status;
    if (!s.healthy) console.log(`not archiving${s.archivedThrough ? ` since ${String(s.archivedThrough)}` : ''}: ${s.error ?? 'unknown'}`);
    return;
  }
  const line = kindLine(e);
  if (line !== undefined) console.log(line);
}
