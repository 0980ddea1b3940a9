/**
 * A command snapshot's consistency point (docs/format.md, docs/command.md): what ran,
 * how it ended and what it wrote. Never a secret: environment values are left out
 * (their names are kept), and argv passes through the one redaction (URL passwords).
 * A snapshot exists only for a dump that exited 0, so `exitCode` is always 0 here;
 * it is recorded so the record reads on its own.
 */
import * as z from 'zod';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { pointOf } from '../registry.js';
import { lazily } from '../../config/schema.js';

export interface CommandPoint {
  argv: string[];
  preset?: string | undefined;
  /** Names of the variables added to the dump's environment (lifeboat.yaml `env`). */
  envNames: string[];
  cwd?: string | undefined;
  exitCode: number;
  /** The last bytes (at most STDERR_TAIL) of what the dump wrote on stderr. */
  stderrTail: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  bytes: number;
  /** SHA-256 of the dump's stdout, hex: a drill checks the restored bytes against it. */
  sha256: string;
}

/** How much of the dump's stderr is kept: enough for a tool's last complaints, bounded. */
export const STDERR_TAIL = 4096;

const count = lazily(() => z.number().int().nonnegative());

// Loose: points written by newer versions may carry more fields; they are kept.
export const commandPointSchema = lazily((): z.ZodType<CommandPoint> => z
  .object({
    argv: z.array(z.string()).min(1),
    preset: z.string().optional(),
    envNames: z.array(z.string()),
    cwd: z.string().optional(),
    exitCode: z.number().int(),
    stderrTail: z.string().max(2 * STDERR_TAIL),
    startedAt: z.string(),
    finishedAt: z.string(),
    durationMs: count(),
    bytes: count(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .loose() as z.ZodType<CommandPoint>);

export function commandPoint(snapshot: Pick<Snapshot, 'id' | 'consistency'>): CommandPoint | undefined {
  return pointOf({ name: 'command', point: commandPointSchema() }, snapshot);
}
