/**
 * Recoverable windows (engine/window.ts): what moments a source or group can be
 * restored to, read from its repository by `lifeboat window … --json` in a child
 * (shared and cached like snapshot listings, daemon/reads.ts).
 */
import { requireGroup, requireSource } from '../../daemon/jobs.js';
import type { ApiContext } from '../context.js';
import { NameParam, RecoverableWindow } from '../dto.js';
import { route, type Route } from '../route.js';
import type { RecoverableWindow as Window } from '../../engine/window.js';

export function windowRoutes({ d }: ApiContext): Route[] {
  return [
    route({
      method: 'GET', url: '/api/v1/sources/:name/window', role: 'viewer',
      summary: "The source's recoverable window: earliest and latest moment, backups, log coverage, gaps, last drill (`lifeboat window NAME --json`)",
      params: NameParam,
      response: { status: 200, description: 'the window', schema: RecoverableWindow },
      handler: async ({ params }) => {
        const s = requireSource(d.config, params.name);
        return (await d.reads.get(s.repository, ['window', '--kind', s.kind, s.name])) as Window;
      },
    }),
    route({
      method: 'GET', url: '/api/v1/groups/:name/window', role: 'viewer',
      summary: "The group's recoverable window: its points, each member's window, the last group drill (`lifeboat window --group NAME --json`)",
      params: NameParam,
      response: { status: 200, description: 'the window', schema: RecoverableWindow },
      handler: async ({ params }) => {
        const g = requireGroup(d.config, params.name);
        return (await d.reads.get(g.repository, ['window', '--group', g.name])) as Window;
      },
    }),
  ];
}
