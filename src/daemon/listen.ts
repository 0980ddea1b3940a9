/**
 * Where the daemon may listen. On loopback only local users reach it. Beyond it,
 * bearer tokens cross the network, so plain HTTP is refused unless the operator says
 * --insecure (a TLS-terminating proxy in front, a private link) and is warned; and
 * /metrics, which names every source and failure, then asks for server.metrics_token.
 */
import { isIP } from 'node:net';
import { LifeboatError } from '../errors.js';
import type { ServerConfig } from '../config/config.js';

/** 127.0.0.0/8, ::1, ::ffff:127.x and localhost. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

/** Throws LISTEN_UNSAFE, or returns the warnings to print before listening. */
export function checkListen(server: Pick<ServerConfig, 'host' | 'tls' | 'metricsToken'>, insecure: boolean): string[] {
  if (isLoopback(server.host)) return [];
  const where = `${server.host}`;
  if (server.metricsToken === undefined) {
    throw new LifeboatError('LISTEN_UNSAFE', `listening on ${where} (beyond loopback) needs server.metrics_token: /metrics names every source and failure`, {
      hint: 'set server.metrics_token (e.g. `openssl rand -hex 24`) and give it to Prometheus as its bearer token, or listen on 127.0.0.1',
    });
  }
  if (server.tls) return [];
  if (!insecure) {
    throw new LifeboatError('LISTEN_UNSAFE', `refusing to listen on ${where} without TLS: API tokens would cross the network in clear text`, {
      hint: 'set server.tls (cert, key), listen on 127.0.0.1 behind a TLS proxy, or pass --insecure if the network is private',
    });
  }
  return [`warning: listening on ${where} without TLS (--insecure): API tokens and job logs cross the network in clear text`];
}
