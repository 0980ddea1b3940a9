/**
 * Destinations a command left out (MultiStore's onDegraded, through cli/context.ts),
 * kept apart from the context so that main.ts can ask without loading the repository
 * code every command start would then pay for.
 */
import { LifeboatError } from '../errors.js';

const seen: Array<{ location: string; why: string }> = [];
let exempt = false;

/**
 * For `pg archive-push|archive-get|archive-prefetch`, whose exit status PostgreSQL
 * reads: a segment stored at the quorum, or fetched, is a success (28 would make it
 * retry a push forever, or end a recovery as if the archive ended). The left-out
 * destination still gets its warning line in the server log.
 */
export function leftOutIsNoExitStatus(): void {
  exempt = true;
}

export function leftOut(location: string, why: string): void {
  seen.push({ location, why });
}

/**
 * DEGRADED when a command that did its work left a destination out: the exit status
 * and the daemon's job say so, not only a warning line among the output, so a
 * destination that is down or emptied for weeks does not pass for a second copy.
 */
export function destinationsLeftOut(): LifeboatError | undefined {
  const [first, ...rest] = seen;
  if (!first || exempt) return undefined;
  const more = rest.length > 0 ? ` (and ${rest.length} more)` : '';
  return new LifeboatError('DEGRADED', `done, but ${first.location} was left out${more}: ${first.why}`, {
    hint: 'the other destinations hold what this run did; bring that one back, then run `lifeboat repair`',
  });
}
