/**
 * What every route module is given: the daemon, and the lookups several resources
 * share (a configured source by name, a job by id, the caller's name and role), so
 * each refuses an unknown name with the same error.
 */
import { LifeboatError } from '../errors.js';
import type { Role } from '../daemon/auth.js';
import type { JobRow } from '../daemon/catalog.js';
import type { Daemon } from '../daemon/daemon.js';
import { requireSource } from '../daemon/jobs.js';
import type { Caller } from './route.js';

export interface ApiContext {
  d: Daemon;
  /** The configured source's name; NOT_FOUND (with the names there are) otherwise. */
  source(name: string): string;
  /** The job; NOT_FOUND otherwise. */
  job(id: string): JobRow;
  /** The calling token's name, recorded as a job's actor. */
  actor(who: Caller): string | undefined;
  /** The calling token's role (viewer for a public route). */
  role(who: Caller): Role;
}

export function apiContext(d: Daemon): ApiContext {
  return {
    d,
    source: (name) => requireSource(d.config, name).name,
    job: (id) => {
      const j = d.catalog.job(id);
      if (!j) throw new LifeboatError('NOT_FOUND', `no job ${id}`, { hint: 'GET /api/v1/jobs lists them' });
      return j;
    },
    actor: (who) => who.token?.name,
    role: (who) => who.token?.role ?? 'viewer',
  };
}
