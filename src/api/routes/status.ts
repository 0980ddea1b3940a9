/** The daemon itself: its status and the calling token. */
import { PROGRAM_VERSION } from '../../repo/repository.js';
import type { ApiContext } from '../context.js';
import { Status, WhoAmI } from '../dto.js';
import { route, type Route } from '../route.js';

export function statusRoutes({ d }: ApiContext): Route[] {
  return [
    route({
      method: 'GET', url: '/api/v1/status', role: 'viewer', summary: 'Daemon status: version, uptime, schedules, continuous archiving',
      response: { status: 200, description: 'status', schema: Status },
      handler: () => ({
        version: PROGRAM_VERSION,
        started_at: d.startedAt.toISOString(),
        schedules: d.scheduler.upcoming(),
        repositories: d.repositories(),
        running_jobs: d.catalog.jobs({ status: 'running' }).length,
      }),
    }),
    route({
      method: 'GET', url: '/api/v1/whoami', role: 'viewer', summary: "The calling token's name and role",
      response: { status: 200, description: 'the token', schema: WhoAmI },
      handler: (_in, _reply, who) => ({ id: who.token?.id, name: who.token?.name, role: who.token?.role }),
    }),
  ];
}
