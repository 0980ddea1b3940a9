/** How database sources are named in the repository (log archives, snapshot sources). */
import { LifeboatError } from '../errors.js';

/** Returns the name, or refuses one that cannot name a source. */
export function checkSourceName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) {
    throw new LifeboatError('USAGE', `"${name}" is not a valid source name`, {
      hint: 'use letters, digits, ".", "_" and "-" (at most 64), starting with a letter or digit',
    });
  }
  return name;
}

/** Returns `kind.name` (the log-archive source), or refuses a name that cannot be one. */
export function sourceKey(kind: string, name: string): string {
  return `${kind}.${checkSourceName(name)}`;
}
