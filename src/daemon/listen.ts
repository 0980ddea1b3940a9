/**
 * Where the daemon may listen. On loopback only local users reach it. Beyond it,
 * bearer tokens cross the network, so plain HTTP is refused unless the operator says
 * --insecure (a TLS-terminating proxy in front, a private link) and is warned; and
 * /metrics, which names every source and failure, then asks for server.metrics_token.
 */
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';
import { LifeboatError, errno } from '../errors.js';
import type { LifeboatConfig, ServerConfig } from '../config/config.js';

/**
 * Reads server.metrics_token_file into server.metrics_token: a secret kept out of
 * lifeboat.yaml, in a file only its owner reads (a file others can read is refused).
 */
export function loadMetricsToken(config: LifeboatConfig): void {
  const file = config.server.metricsTokenFile;
  if (file === undefined || config.server.metricsToken !== undefined) return;
  const full = path.resolve(path.dirname(config.file), file);
  let text: string;
  try {
    if ((statSync(full).mode & 0o077) !== 0) {
      throw new LifeboatError('CONFIG_INVALID', `server.metrics_token_file ${full} can be read by other users`, { hint: `chmod 600 ${full}` });
    }
    text = readFileSync(full, 'utf8').trim();
  } catch (err) {
    if (err instanceof LifeboatError) throw err;
    throw new LifeboatError('CONFIG_INVALID', `cannot read server.metrics_token_file ${full}: ${errno(err) ?? String(err)}`, { hint: 'a file holding the token /metrics asks for beyond loopback' });
  }
  if (text.length < 16) throw new LifeboatError('CONFIG_INVALID', `the metrics token in ${full} is shorter than 16 characters`, { hint: 'e.g. `openssl rand -hex 24 > FILE`' });
  config.server.metricsToken = text;
}

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
      hint: 'set server.metrics_token_file (a 0600 file; e.g. `openssl rand -hex 24`) or server.metrics_token, and give it to Prometheus as its bearer token; or listen on 127.0.0.1',
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
