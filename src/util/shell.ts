/**
 * Quoting for the few places where a shell command line cannot be avoided: the
 * restore_command and archive_command PostgreSQL runs through `sh -c`. Everything
 * else passes argv arrays. Imports nothing else from src/.
 *
 * Layers, innermost first, each undone by exactly one reader:
 *  1. POSIX single quotes (`sh` reads everything between them literally; a quote
 *     inside becomes '\'' ).
 *  2. PostgreSQL's %-placeholders (%f, %p, %r): a literal % becomes %%, so a path
 *     holding "%p" stays a path.
 *  3. PostgreSQL configuration-file quoting ('' and \\), for postgresql.auto.conf.
 * NUL and line breaks cannot pass through the configuration file (nor most tools),
 * so they are refused rather than mangled.
 */

/** Thrown for a value no quoting can carry; callers turn it into a user error. */
export class UnquotableError extends RangeError {
  constructor(readonly value: string) {
    super(`${JSON.stringify(value)} holds a NUL or line break, which cannot go into a shell command in postgresql.auto.conf`);
    this.name = 'UnquotableError';
  }
}

/** True when the value can be quoted by the functions below. */
export function quotable(value: string): boolean {
  return !/[\0\r\n]/.test(value);
}

function check(value: string): string {
  if (!quotable(value)) throw new UnquotableError(value);
  return value;
}

/** One word for `sh`: always single-quoted, so nothing inside is expanded. */
export function shellQuote(word: string): string {
  return `'${check(word).replace(/'/g, `'\\''`)}'`;
}

/** A command line from argv: each word quoted on its own. */
export function shellJoin(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/** Shell text made safe from PostgreSQL's %-substitution (restore_command, archive_command). */
export function escapePercent(shellText: string): string {
  return shellText.replace(/%/g, '%%');
}

/** A string value in postgresql.conf / postgresql.auto.conf. */
export function pgConfQuote(value: string): string {
  return `'${check(value).replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}
