/**
 * Damaged objects: what readers call an object that fails authentication, does not
 * match its name, exceeds its bound (src/repo/limits.ts) or does not parse. Readers
 * skip such an object with a warning naming it, and never let it release data
 * (docs/format.md, "Damaged, foreign and junk objects").
 */
import { LifeboatError, isLifeboatError } from '../errors.js';

/** A stored object that could not be read as what its folder holds. */
export interface DamagedObject {
  key: string;
  error: string;
}

/** Whether an error means the object itself is damaged, foreign or junk (rather than the store failing). */
export function isDamage(err: unknown): boolean {
  return isLifeboatError(err, 'CORRUPT') || isLifeboatError(err, 'UNSUPPORTED_FORMAT');
}

/** Parses an authenticated JSON record; CORRUPT (naming it) when it is not JSON. */
export function parseJson<T>(plain: Buffer, what: string): T {
  try {
    return JSON.parse(plain.toString('utf8')) as T;
  } catch (err) {
    throw new LifeboatError('CORRUPT', `${what}: not valid JSON`, { hint: 'run `lifeboat check`', cause: err });
  }
}
