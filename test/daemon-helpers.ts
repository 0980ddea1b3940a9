/** Starting a real daemon for tests: a scratch repository, a lifeboat.yaml, tokens per role. */
import { writeFileSync, mkdirSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { parseConfig, type LifeboatConfig } from '../src/config/config.js';
import { Daemon, type DaemonOptions } from '../src/daemon/daemon.js';
import { createToken, type Role } from '../src/daemon/auth.js';
import { initRepo, tmpdir } from './helpers.js';
import { waitUntil } from './pg-streamer.js';

export interface TestDaemon {
  daemon: Daemon;
  dir: string;
  /** A directory the `docs` files source backs up. */
  data: string;
  config: LifeboatConfig;
  tokens: Record<Role, string>;
  auth(role: Role): { authorization: string };
}

/**
 * A daemon over a fresh repository with one files source, `docs`. `extraSources` is
 * YAML added under `sources:`, `extra` whole sections (schedules, notifications,
 * server); `$DIR` in either is the test's directory. Neither listening nor started.
 */
export async function testDaemon(opts: { extraSources?: string; extra?: string; daemon?: DaemonOptions; moreStores?: { paths: string[]; writeQuorum: number } } = {}): Promise<TestDaemon> {
  const dir = tmpdir('lb-daemon-');
  const data = path.join(dir, 'data');
  mkdirSync(data);
  writeFileSync(path.join(data, 'a.txt'), 'first file\n');
  writeFileSync(path.join(dir, 'pass'), 'test-password\n');
  await initRepo(path.join(dir, 'repo'));
  const text = [
    'repositories:',
    '  main:',
    `    stores: [${[path.join(dir, 'repo'), ...(opts.moreStores?.paths ?? [])].join(', ')}]`,
    ...(opts.moreStores ? [`    write_quorum: ${opts.moreStores.writeQuorum}`] : []),
    `    password_file: ${path.join(dir, 'pass')}`,
    'sources:',
    '  docs:',
    '    kind: files',
    `    paths: [${data}]`,
    '    targets: { rpo: 1h, rto: 10min }',
    '    retention: { keep_last: 2 }',
    ...(opts.extraSources ? [opts.extraSources.replaceAll('$DIR', dir)] : []),
    ...(opts.extra ? [opts.extra.replaceAll('$DIR', dir)] : []),
    // API restores go below the test's directory (its repository and state directory stay refused).
    ...(opts.extra?.includes('server:') ? [] : ['server:', '  listen: 127.0.0.1:0', '  state_dir: state', `  restore_roots: [${dir}]`]),
  ].join('\n');
  const file = path.join(dir, 'lifeboat.yaml');
  writeFileSync(file, `${text}\n`);
  const config = parseConfig(text, file);
  const daemon = await Daemon.create(config, { log: () => {}, ...opts.daemon });
  const tokens = {
    viewer: createToken(daemon.catalog, 'viewer', 'alice-viewer').token,
    operator: createToken(daemon.catalog, 'operator', 'olga-operator').token,
    admin: createToken(daemon.catalog, 'admin', 'adam-admin').token,
  };
  return { daemon, dir, data, config, tokens, auth: (role) => ({ authorization: `Bearer ${tokens[role]}` }) };
}

/** A local webhook endpoint on 127.0.0.1 that records the JSON bodies it accepts. */
export interface WebhookReceiver<T> {
  url: string;
  /** Accepted deliveries, in order, with the path they were sent to. */
  requests: Array<{ path: string; body: T }>;
  /** The same, bodies only. */
  bodies: T[];
  close(): Promise<void>;
}

/** `respond` chooses the status per path (default 204); a delivery answered with anything but 2xx is not recorded. */
export async function webhookReceiver<T = Record<string, unknown>>(respond: (path: string) => number = () => 204): Promise<WebhookReceiver<T>> {
  const requests: Array<{ path: string; body: T }> = [];
  const bodies: T[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const status = respond(req.url as string);
      if (status >= 200 && status < 300) {
        const parsed = JSON.parse(body) as T;
        requests.push({ path: req.url as string, body: parsed });
        bodies.push(parsed);
      }
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    bodies,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

export interface WatchingDaemon {
  daemon: Daemon;
  receiver: WebhookReceiver<{ event: string; source: string | null; message: string; details: Record<string, unknown> }>;
  /** The daemon's base URL. */
  url: string;
  /** lifeboat.yaml, for CLI commands against the same repository (`--config FILE --repo main`). */
  file: string;
}

/**
 * A started daemon that watches archiving: a fresh repository `main` in `dir`, the
 * `sources` lines (YAML under `sources:`), every notification to a local webhook, and
 * incidents checked every `checkIntervalS` seconds.
 */
export async function watchingDaemon(dir: string, sources: string[], checkIntervalS: number): Promise<WatchingDaemon> {
  writeFileSync(path.join(dir, 'pass'), 'watching-daemon\n');
  await initRepo(path.join(dir, 'repo'), 'watching-daemon');
  const receiver = await webhookReceiver<WatchingDaemon['receiver']['bodies'][number]>();
  const text = [
    'repositories:',
    `  main: { stores: [${path.join(dir, 'repo')}], password_file: ${path.join(dir, 'pass')} }`,
    'sources:',
    ...sources.map((l) => `  ${l}`),
    'notifications:',
    `  ops: { url: "${receiver.url}/", repeat: never }`,
    'server:',
    '  listen: 127.0.0.1:0',
    '  state_dir: state',
    `  check_interval: ${checkIntervalS}s`,
  ].join('\n');
  const file = path.join(dir, 'lifeboat.yaml');
  writeFileSync(file, text);
  const daemon = await Daemon.create(parseConfig(text, file), { log: () => {} });
  const url = await daemon.listen();
  daemon.start();
  return { daemon, receiver, url, file };
}

/** `source`'s value of gauge `name` in the daemon's metrics; undefined when it has none. */
export async function sourceMetric(daemon: Daemon, source: string, name: string): Promise<number | undefined> {
  const m = new RegExp(`^${name}\\{source="${source}"\\} (\\S+)$`, 'm').exec(await daemon.metrics.render());
  return m ? Number(m[1]) : undefined;
}

/**
 * Waits until lifeboat_rpo_seconds proves `source` recoverable through `t`. The RPO is the
 * age at the daemon's now, which is after the time taken here before asking: never later
 * than the truth (a Date.now() taken after the answer overstated what was proven by the
 * wait, and a restore right after missed the last records when the machine was busy).
 */
export function rpoCovers(daemon: Daemon, source: string, t: number, what = `the RPO to cover ${new Date(t).toISOString()}`): Promise<boolean> {
  return waitUntil(what, async () => {
    const asked = Date.now();
    const rpo = await sourceMetric(daemon, source, 'lifeboat_rpo_seconds');
    return rpo !== undefined && asked - rpo * 1000 >= t;
  }, 60_000);
}
