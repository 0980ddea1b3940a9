/**
 * The one parser for a recovery target time, shared by every command and API call
 * that restores "as of" a moment (pg restore, pg verify, sqlite restore, the daemon's
 * restores and recoveries). Two kinds of time are refused instead of guessed at:
 *
 * - A time without a zone: read in the machine's zone it means a different moment on
 *   every host (and in every daemon whose TZ differs from the operator's shell).
 * - A time in the future: nothing has been committed there yet. PostgreSQL refuses
 *   to start after such a recovery ("recovery ended before configured recovery target
 *   was reached") and SQLite would silently give the newest state, which is not what
 *   was asked for. `--latest` is the honest way to say "everything there is".
 */
import { LifeboatError } from '../errors.js';

/** RFC 3339 date-time: a date, a time with optional fraction, and a zone (Z or ±hh:mm). */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|z|[+-]\d{2}:?\d{2})?$/;

export function parseTargetTime(text: string, now: Date = new Date()): Date {
  const m = RFC3339.exec(text.trim());
  const t = m ? new Date(text.trim().replace(' ', 'T')) : undefined;
  if (!m || !t || Number.isNaN(t.getTime())) {
    throw new LifeboatError('USAGE', `"${text}" is not an RFC 3339 time`, { hint: 'example: 2026-11-21T14:30:00Z (or with an offset: 2026-11-21T15:30:00+01:00)' });
  }
  if (m[7] === undefined) {
    throw new LifeboatError('USAGE', `"${text}" has no time zone`, {
      hint: `add Z for UTC or an offset such as +01:00 (e.g. ${text.trim().replace(' ', 'T')}Z); a zone-less time would be read in this machine's zone`,
    });
  }
  if (t.getTime() > now.getTime()) {
    throw new LifeboatError('USAGE', `"${text}" is in the future (now is ${now.toISOString()})`, {
      hint: 'nothing was committed there yet; restore the newest state with --latest (API: leave out "time")',
    });
  }
  return t;
}
