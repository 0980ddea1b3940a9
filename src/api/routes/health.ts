/** Public endpoints for machines: Prometheus metrics, liveness and readiness. */
import { LifeboatError } from '../../errors.js';
import { authenticate, bearerIs } from '../../daemon/auth.js';
import { isLoopback } from '../../daemon/listen.js';
import type { ApiContext } from '../context.js';
import { HealthStatus } from '../dto.js';
import { route, sendError, type Route } from '../route.js';

export function healthRoutes({ d }: ApiContext): Route[] {
  return [
    route({
      method: 'GET', url: '/metrics', summary: 'Prometheus metrics (beyond loopback: Bearer server.metrics_token, or any API token)',
      response: { status: 200, description: 'text/plain; version=0.0.4' },
      handler: async (_in, reply) => {
        const req = reply.request;
        // Metrics name every source and failure: public only while the daemon listens on loopback.
        if (!isLoopback(d.config.server.host)) {
          const header = req.headers.authorization;
          const api = authenticate(d.catalog, header);
          const ok = (d.config.server.metricsToken !== undefined && bearerIs(header, d.config.server.metricsToken)) || (api !== undefined && 'token' in api);
          if (!ok) {
            reply.header('www-authenticate', 'Bearer realm="lifeboat"');
            return sendError(reply, new LifeboatError('UNAUTHENTICATED', '/metrics needs a token when the daemon listens beyond loopback', { hint: 'configure Prometheus with authorization: { credentials: <server.metrics_token> }' }));
          }
        }
        reply.header('content-type', d.metrics.registry.contentType);
        return d.metrics.render();
      },
    }),
    route({
      method: 'GET', url: '/health/live', summary: 'Liveness: the process answers',
      response: { status: 200, description: 'alive', schema: HealthStatus },
      handler: () => ({ status: 'ok' }),
    }),
    route({
      method: 'GET', url: '/health/ready', summary: 'Readiness: schedules running and the catalog writable (503 otherwise)',
      response: { status: 200, description: 'ready', schema: HealthStatus },
      handler: (_in, reply) => {
        const ready = d.isReady();
        reply.code(ready ? 200 : 503);
        return { status: ready ? 'ready' : 'not ready' };
      },
    }),
  ];
}
