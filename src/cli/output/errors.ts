/** Turns any error into the one-line message, hint and exit code every entry point uses. */
import { CommanderError } from 'commander';
import { ERROR_TABLE, LifeboatError } from '../../errors.js';
import { redact } from '../../util/redact.js';

export function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
    return ERROR_TABLE.USAGE.exit;
  }
  if (err instanceof LifeboatError) {
    // Errors end up in job logs readable by viewer tokens: never a DSN password.
    process.stderr.write(`lifeboat: ${redact(err.message)}\n`);
    if (err.hint) process.stderr.write(`  hint: ${redact(err.hint)}\n`);
    return err.exitCode;
  }
  const e = err as NodeJS.ErrnoException;
  process.stderr.write(`lifeboat: ${redact(e?.message ?? String(err))}\n`);
  if (process.env.LIFEBOAT_DEBUG) process.stderr.write(`${redact(String(e?.stack))}\n`);
  return ERROR_TABLE.FAILED.exit;
}
