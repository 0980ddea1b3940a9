/**
 * Destinations a command left out (MultiStore's onDegraded, through cli/context.ts),
 * kept apart from the context so that main.ts can ask without loading the repository
 * code every command start would then pay for.
 */
import { LifeboatError } from '../errors.js';

const seen: Array<{ location: string; why: string }> = [];

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
  if (!first) return undefined;
  const more = rest.length > 0 ? ` (and ${rest.length} more)` : '';
  return new LifeboatError('DEGRADED', `done, but ${first.location} was left out${more}: ${first.why}`, {
    hint: 'the other destinations hold what this run did; bring that one back, then run `lifeboat repair`',
  });
}
