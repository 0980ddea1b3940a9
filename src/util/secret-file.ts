/** Secrets kept in files (a source's password_file): the first line is the secret, so a trailing newline or a comment line after it does not count. */
import { readFileSync } from 'node:fs';
import { LifeboatError, errno } from '../errors.js';

/** The first line of `file`, without trailing spaces; NOT_FOUND naming the file (as `what`) when it cannot be read. */
export function readSecretLine(file: string, what: string, hint: string): string {
  try {
    return (readFileSync(file, 'utf8').split(/\r?\n/)[0] ?? '').trimEnd();
  } catch (err) {
    throw new LifeboatError('NOT_FOUND', `cannot read the ${what} ${file}: ${errno(err) ?? String(err)}`, { hint });
  }
}
