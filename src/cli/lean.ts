/**
 * The lean entry point for the two commands PostgreSQL runs once per WAL segment
 * (`pg archive-push`, `pg archive-get`). It loads only the repository and WAL code —
 * no argument-parsing library, no database client, no worker pools — because its
 * start-up cost is paid for every 16 MiB of WAL. Anything it does not recognise (a
 * global option before `pg`, say) goes to the full CLI, which parses it and then
 * calls runArchiveCall here, or gives the usual errors.
 */
import { rm } from 'node:fs/promises';
import { LifeboatError } from '../errors.js';
import { archiveGet, archivePush, markerText, prefetch, pushAhead, takePrefetched, takePushMarker } from '../sources/postgres/archive.js';
import { Repository } from '../repo/repository.js';
import { openRepo, withRepo, withStore, type GlobalOptions } from './context.js';
import { reportError } from './output/errors.js';

export interface ArchiveCall {
  verb: 'archive-push' | 'archive-get';
  name: string;
  prefetch?: string;
  g: GlobalOptions;
  args: string[];
}

const VALUE_FLAGS: Record<string, string> = {
  '--name': 'name',
  '--repo': 'repo',
  '-r': 'repo',
  '--password-file': 'passwordFile',
  '-p': 'passwordFile',
  '--prefetch': 'prefetch',
  '--compression': 'compression',
  '--config': 'config',
  '-c': 'config',
};

/** Parses `pg archive-push|archive-get ...`; undefined when the full CLI should handle it. */
export function parse(argv: string[]): ArchiveCall | undefined {
  const [group, verb, ...rest] = argv;
  if (group !== 'pg' || (verb !== 'archive-push' && verb !== 'archive-get')) return undefined;
  const values: Record<string, string> = {};
  const g: GlobalOptions = {};
  const args: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const key = VALUE_FLAGS[flag];
    if (key) {
      const v = flag === a ? rest[++i] : a.slice(eq + 1);
      if (v === undefined) return undefined;
      values[key] = v;
    } else if (a === '--json') g.json = true;
    else if (a === '-q' || a === '--quiet') g.quiet = true;
    else if (a.startsWith('-') && a !== '-') return undefined;
    else args.push(a);
  }
  const name = values.name;
  if (!name || args.length !== (verb === 'archive-push' ? 1 : 2)) return undefined;
  if (values.repo) g.repo = values.repo;
  if (values.passwordFile) g.passwordFile = values.passwordFile;
  if (values.compression) g.compression = values.compression;
  if (values.config) g.config = values.config;
  return { verb, name, g, args, ...(values.prefetch ? { prefetch: values.prefetch } : {}) };
}

/** Runs archive-push or archive-get; the full CLI calls this too, after its own parsing. */
export async function runArchiveCall(p: ArchiveCall): Promise<void> {
  if (p.verb === 'archive-push') {
    const walPath = p.args[0] as string;
    await withStore(p.g, async (store) => {
      // Shipped already by an earlier call's batch to this same repository and
      // source: the plain config (no password, no scrypt) is all it takes to tell.
      const config = await Repository.readConfig(store);
      if (await takePushMarker(walPath, markerText(config.id, p.name))) {
        if (p.g.json) process.stdout.write(`${JSON.stringify({ file: walPath, result: 'batched' })}\n`);
        return;
      }
      const repo = await openRepo(store, p.g, config);
      const r = await archivePush(repo, p.name, walPath);
      const ahead = await pushAhead(repo, p.name, walPath);
      if (p.g.json) process.stdout.write(`${JSON.stringify({ file: walPath, result: r, pushedAhead: ahead })}\n`);
    });
    return;
  }
  const [file, dest] = p.args as [string, string];
  // A prefetched segment needs neither the password nor the repository.
  if (p.prefetch && (await takePrefetched(p.prefetch, file, dest))) return;
  await withRepo(p.g, async (repo) => {
    if (await archiveGet(repo, p.name, file, dest)) {
      if (p.prefetch) await prefetch(repo, p.name, file, p.prefetch);
      return;
    }
    // A segment past the end of the archive: recovery is finishing and the spool
    // has served its purpose. (Missing history files are asked for all along.)
    if (p.prefetch && /^[0-9A-F]{24}$/.test(file)) await rm(p.prefetch, { recursive: true, force: true });
    throw new LifeboatError('NOT_FOUND', `${file} is not in the archive of ${p.name}`, {
      hint: 'normal at the end of recovery; otherwise check archive_command on the primary',
    });
  });
}

/** Runs the command if it is one of ours; returns false to hand it to the full CLI. */
export async function main(argv: string[]): Promise<boolean> {
  const parsed = parse(argv);
  if (!parsed) return false;
  try {
    await runArchiveCall(parsed);
    process.exitCode = 0;
  } catch (err) {
    process.exitCode = reportError(err);
  }
  return true;
}
