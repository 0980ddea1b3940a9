/**
 * The daemon's commands: serve, config check, token create/list/revoke, runbook and
 * catalog rebuild. Each needs lifeboat.yaml (--config, LIFEBOAT_CONFIG or ./lifeboat.yaml).
 */
import { closeSync, constants as fsc, fchmodSync, ftruncateSync, mkdirSync, openSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { findConfig, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import { forTerminal } from '../../util/terminal.js';
import { describeHook, type LifeboatConfig } from '../../config/config.js';
import type { Catalog } from '../../daemon/catalog.js';
import { serverOptions, tokenExpires } from '../../config/model.js';
import type { Duration } from '../../util/duration.js';
import { flagOf } from './options.js';

async function requireConfig(g: GlobalOptions, file?: string): Promise<LifeboatConfig> {
  const config = await findConfig(file ? { ...g, config: file } : g);
  if (!config) {
    throw new LifeboatError('CONFIG_INVALID', 'no configuration file', { hint: 'pass --config lifeboat.yaml, set LIFEBOAT_CONFIG, or create ./lifeboat.yaml (docs/configuration.md)' });
  }
  return config;
}

/** Opens the daemon's catalog (in server.state_dir) for one command. */
async function withCatalog<T>(config: LifeboatConfig, fn: (catalog: Catalog) => T): Promise<T> {
  const { Catalog } = await import('../../daemon/catalog.js');
  const catalog = new Catalog(path.resolve(path.dirname(config.file), config.server.stateDir));
  try {
    return fn(catalog);
  } finally {
    catalog.close();
  }
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the daemon: schedules, continuous archiving, REST API, dashboard and /metrics')
    .addOption(flagOf(serverOptions().shape.listen, { arg: '<host:port>', description: 'override server.listen' }))
    .option('--insecure', 'allow plain HTTP beyond loopback (a TLS proxy in front, a private network); prints a warning')
    .action(async (f: { listen?: string; insecure?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const config = await requireConfig(g);
      if (f.listen) {
        const m = /^(.*):(\d{1,5})$/.exec(f.listen);
        if (!m) throw new LifeboatError('USAGE', `--listen "${f.listen}" is not HOST:PORT`, { hint: 'e.g. --listen 127.0.0.1:8470' });
        config.server.host = m[1] as string;
        config.server.port = Number(m[2]);
      }
      // Refused before anything starts: no schedule runs on a daemon that will not serve.
      const { checkListen, loadMetricsToken } = await import('../../daemon/listen.js');
      loadMetricsToken(config);
      for (const w of checkListen(config.server, f.insecure ?? false)) console.error(w);
      const { Daemon } = await import('../../daemon/daemon.js');
      const daemon = await Daemon.create(config);
      daemon.start();
      let address: string;
      try {
        address = await daemon.listen({ insecure: f.insecure ?? false, warn: () => {} });
      } catch (err) {
        await daemon.stop();
        if (err instanceof LifeboatError) throw err;
        const e = err as NodeJS.ErrnoException;
        throw new LifeboatError('USAGE', `cannot listen on ${config.server.host}:${config.server.port}: ${e.code ?? e.message}`, { hint: 'another process holds the port; change server.listen or pass --listen' });
      }
      const tokens = daemon.catalog.tokens().filter((t) => !t.revoked_at).length;
      console.error(`lifeboat: serving on ${address} (dashboard ${address}/dashboard/, metrics ${address}/metrics); ${config.sources.size} sources, ${config.schedules.size} schedules`);
      if (tokens === 0) console.error('lifeboat: no API tokens yet: `lifeboat token create --role admin --name you` makes one');
      if (g.json) printJson({ listening: address });
      await new Promise<void>((resolve, reject) => {
        const stop = () => {
          console.error('lifeboat: stopping (running jobs are asked to finish cleanly)');
          daemon.stop().then(resolve, reject);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });

  const config = program.command('config').description('the configuration file');
  config
    .command('check [file]')
    .description('validate lifeboat.yaml, and that the repositories, password files and sources it names exist and answer; print what it defines and when each schedule fires next')
    .option('--offline', 'check the file only: skip whether repositories, password files and sources exist and are reachable')
    .action(async (file: string | undefined, f: { offline?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const c = await requireConfig(g, file);
      const { cronOf } = await import('../../daemon/scheduler.js');
      const schedules = [...c.schedules.values()].map((s) => ({
        name: s.name,
        run: s.run,
        // A group schedule captures its groups: named as such, so they do not read as sources.
        targets: s.repository ? [s.repository] : s.groups.length > 0 ? s.groups.map((gr) => `group ${gr}`) : s.sources,
        cron: s.cron,
        timezone: s.timezone ?? 'local',
        next: cronOf(s).nextRun()?.toISOString() ?? null,
      }));
      const { reachability } = await import('./config-reach.js');
      const problems = f.offline ? [] : await reachability(c);
      const summary = {
        file: c.file,
        valid: true,
        reachable: f.offline ? null : problems.length === 0,
        problems,
        repositories: [...c.repositories.values()].map((r) => ({ name: r.name, stores: r.stores.length, write_quorum: r.writeQuorum })),
        sources: [...c.sources.values()].map((s) => ({ name: s.name, kind: s.kind, repository: s.repository, continuous: s.continuous, rpo_target_seconds: s.targets.rpoSeconds ?? null, rto_target_seconds: s.targets.rtoSeconds ?? null })),
        schedules,
        notifications: [...c.notifications.keys()],
        server: { listen: `${c.server.host}:${c.server.port}`, tls: c.server.tls !== undefined, state_dir: c.server.stateDir, restore_roots: c.server.restoreRoots },
      };
      const unreachable = () =>
        new LifeboatError('CONFIG_UNREACHABLE', `${c.file} is valid, but ${problems.length} thing(s) it names are missing or unreachable; first: ${problems[0]?.subject}: ${problems[0]?.message}`, {
          hint: 'fix them, or pass --offline to check the file alone (e.g. one written for another machine)',
        });
      if (g.json) {
        printJson(summary);
        if (problems.length > 0) throw unreachable();
        return;
      }
      for (const p of problems) console.error(`  ${p.subject}: ${p.message}`);
      if (problems.length > 0) throw unreachable();
      if (g.quiet) return;
      console.log(`${c.file}: valid${f.offline ? ' (offline: nothing it names was checked)' : '; repositories, password files and sources are there and answer'}`);
      console.log(`  repositories: ${summary.repositories.map((r) => `${r.name} (${r.stores} store${r.stores === 1 ? '' : 's'})`).join(', ') || 'none'}`);
      console.log(`  sources: ${summary.sources.map((s) => `${s.name} (${s.kind}${s.continuous ? ', continuous' : ''})`).join(', ') || 'none'}`);
      for (const gr of c.groups.values()) console.log(`  group ${gr.name}: ${gr.members.join(', ')}; ${gr.freeze ? `freeze: ${describeHook(gr.freeze)}` : 'no freeze'}, max_hold ${gr.maxHoldMs} ms`);
      for (const s of schedules) console.log(`  schedule ${s.name}: ${s.run} ${s.targets.join(', ')} at "${s.cron}" (${s.timezone}); next ${s.next ?? 'never'}`);
      console.log(`  server: ${summary.server.listen}${summary.server.tls ? ' (TLS)' : ''}, state in ${summary.server.state_dir}; API restores ${c.server.restoreRoots.length ? `below ${c.server.restoreRoots.join(', ')}` : 'admin-only (no server.restore_roots)'}`);
    });

  const token = program.command('token').description('API tokens for the daemon (stored hashed in its catalog)');
  token
    .command('create')
    .description('create a token; its secret is printed once')
    .requiredOption('--role <role>', 'viewer (read), operator (also backups, restores, drills) or admin (also tokens, audit, retention)')
    .option('--name <name>', 'who or what uses it (unique among active tokens)', 'token')
    .addOption(flagOf(tokenExpires(), { description: 'lifetime, e.g. 30d, 12h or 1w (default: never)' }))
    .action(async (f: { role: string; name: string; expires?: Duration | 'never' }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { createToken, parseRole } = await import('../../daemon/auth.js');
      const role = parseRole(f.role);
      const t = await withCatalog(await requireConfig(g), (catalog) => createToken(catalog, role, f.name, f.expires === 'never' ? undefined : f.expires));
      if (g.json) printJson({ id: t.id, name: f.name, role, token: t.token, expires_at: t.expires_at });
      else {
        console.log(t.token);
        if (!g.quiet) console.error(`lifeboat: token ${t.id} (${f.name}, ${role}${t.expires_at ? `, expires ${t.expires_at}` : ''}) created; it is shown only now`);
      }
    });
  token
    .command('list')
    .description('list tokens (never their secrets)')
    .action(async (_f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const all = await withCatalog(await requireConfig(g), (catalog) => catalog.tokens());
      if (g.json) return printJson(all);
      for (const t of all) {
        const state = t.revoked_at ? `  revoked ${t.revoked_at}` : t.state === 'expired' ? `  expired ${t.expires_at}` : t.expires_at ? `  expires ${t.expires_at}` : '';
        console.log(forTerminal(`${t.id}  ${t.role.padEnd(8)}  ${t.name}  created ${t.created_at}${state}`));
      }
    });
  token
    .command('revoke <id-or-name>')
    .description('revoke one token, by id or by name')
    .action(async (idOrName: string, _f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { revokeToken } = await import('../../daemon/auth.js');
      const t = await withCatalog(await requireConfig(g), (catalog) => revokeToken(catalog, idOrName));
      if (g.json) printJson({ revoked: 1, id: t.id, name: t.name });
      else if (!g.quiet) console.log(`revoked 1 token (${t.id}, ${t.name})`);
    });

  program
    .command('runbook')
    .description('write a disaster-recovery runbook in Markdown for this deployment')
    .option('-o, --output <file>', 'write to a file instead of standard output')
    .action(async (f: { output?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const c = await requireConfig(g);
      const { runbook } = await import('../../daemon/runbook.js');
      const text = await withCatalog(c, (catalog) => runbook(c, { newestBackup: (s) => catalog.backups(s, 1)[0], lastDrill: (s) => catalog.drills(s, 1)[0], newestPoint: (g) => catalog.groupPoints(g, 1)[0] }));
      if (f.output) writePrivate(f.output, text);
      else process.stdout.write(text);
    });

  program
    .command('catalog')
    .description("the daemon's local catalog")
    .command('rebuild')
    .description('rebuild what the catalog knows of backups and drills from the repositories')
    .action(async (_f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { Daemon } = await import('../../daemon/daemon.js');
      const daemon = await Daemon.create(await requireConfig(g), { log: () => {} });
      try {
        const r = await daemon.rebuildCatalog();
        if (g.json) printJson(r);
        else if (!g.quiet) console.log(`catalog rebuilt: ${r.backups} backups, ${r.drills} drills`);
      } finally {
        await daemon.stop();
      }
    });
}

/**
 * Writes a file only its owner reads (0600; a missing directory is made 0700): a
 * runbook names hosts, repositories and password files. The last component is never
 * followed if it is a symlink; an existing runbook is replaced in place.
 */
function writePrivate(file: string, text: string): void {
  mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new LifeboatError('USAGE', `cannot write ${file}: ${code ?? (err as Error).message}`, { hint: code === 'ELOOP' ? 'it is a symbolic link; give the real path' : 'check the path and its permissions' });
  }
  try {
    fchmodSync(fd, 0o600);
    ftruncateSync(fd, 0);
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}
