/**
 * Turns any error into the one-line message, hint and exit code every entry point uses.
 * In a daemon job the same facts also go out as the `error` event, with the exact code
 * (several codes share an exit status, so the status alone cannot name the error).
 */
import { ERROR_TABLE, LifeboatError, type ErrorCode } from '../../errors.js';
import { redact } from '../../util/redact.js';
import { emitJobEvent } from './job-events.js';

function report(code: ErrorCode, message: string, hint: string | undefined, exit: number): number {
  emitJobEvent({ type: 'error', code, message, exit, ...(hint !== undefined ? { hint } : {}) });
  return exit;
}

/**
 * Commander's errors, known by their shape rather than by class: the lean entry point
 * reports errors without loading commander.
 */
function isCommanderError(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | undefined)?.code;
  return err instanceof Error && typeof code === 'string' && code.startsWith('commander.');
}

export function reportError(err: unknown): number {
  if (isCommanderError(err)) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
    // commander has printed the message itself.
    return report('USAGE', redact(err.message.replace(/^error: /, '')), 'run the command with --help for usage', ERROR_TABLE.USAGE.exit);
  }
  if (err instanceof LifeboatError) {
    // Errors end up in job logs readable by viewer tokens: never a DSN password.
    const message = redact(err.message);
    const hint = err.hint ? redact(err.hint) : undefined;
    process.stderr.write(`lifeboat: ${message}\n`);
    if (hint) process.stderr.write(`  hint: ${hint}\n`);
    return report(err.code, message, hint, err.exitCode);
  }
  const e = err as NodeJS.ErrnoException;
  const message = redact(e?.message ?? String(err));
  // An error no code path foresaw still gets a hint: how to see more, and where it belongs.
  const hint = process.env.LIFEBOAT_DEBUG ? undefined : 'an unexpected error; run again with LIFEBOAT_DEBUG=1 for its stack trace, and report it';
  process.stderr.write(`lifeboat: ${message}\n`);
  if (hint) process.stderr.write(`  hint: ${hint}\n`);
  else process.stderr.write(`${redact(String(e?.stack))}\n`);
  return report('FAILED', message, hint, ERROR_TABLE.FAILED.exit);
}

/**
 * Node ends a process whose event loop has nothing left to do, with exit code 0, even
 * while the command still awaits a promise nothing can settle any more (a job queued
 * for a worker that never started, a reply from a thread that is gone). That would
 * report an unfinished backup as a success; this says it failed instead.
 */
export function failIfStalled(command: Promise<unknown>): void {
  let finished = false;
  const done = () => (finished = true);
  command.then(done, done);
  process.once('beforeExit', () => {
    if (finished) return;
    process.exitCode = reportError(
      new LifeboatError('FAILED', 'the command stopped before it finished: nothing was left that could complete it', {
        hint: 'if it was waiting for input, its input ended first; otherwise this is a bug: run again with LIFEBOAT_DEBUG=1 and report it',
      }),
    );
  });
}
