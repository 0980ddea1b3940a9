/**
 * The lean entry point for the two commands PostgreSQL runs once per WAL segment
 * (`pg archive-push`, `pg archive-get`). It loads only the repository and WAL code —
 * no argument-parsing library, no database client, no worker pools — because its
 * start-up cost is paid for every 16 MiB of WAL. Anything it does not recognise (a
 * global option before `pg`, say) goes to the full CLI, which parses it and then
 * calls runArchiveCall here, or gives the usual errors.
 */
import { rm } from 'node:fs/promises';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LifeboatError, isLifeboatError } from '../errors.js';
import { archiveGet, archiveHas, archivePush, markerText, pushAhead, takePushMarker } from '../sources/postgres/archive.js';
import { FIRST_SEGMENTS, SPOOL_SEGMENTS, fetcherRunning, prefetch, recordWanted, runFetcher, startFetcher, takePrefetched } from '../sources/postgres/prefetch.js';
import { parseWalName, segmentName } from '../sources/postgres/wal.js';
import { Repository } from '../repo/repository.js';
import { openRepo, withRepo, withStore, type GlobalOptions } from './context.js';
import { failIfStalled, reportError } from './output/errors.js';
import { leftOutIsNoExitStatus } from './left-out.js';
import { redact } from '../util/redact.js';

export interface ArchiveCall {
  /** archive-prefetch: the background fetcher an archive-get starts (prefetch.ts). */
  verb: 'archive-push' | 'archive-get' | 'archive-prefetch';
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
  if (group !== 'pg' || (verb !== 'archive-push' && verb !== 'archive-get' && verb !== 'archive-prefetch')) return undefined;
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
  if (!name || args.length !== (verb === 'archive-get' ? 2 : 1)) return undefined;
  if (verb === 'archive-prefetch' && !values.prefetch) return undefined;
  if (values.repo) g.repo = values.repo;
  if (values.passwordFile) g.passwordFile = values.passwordFile;
  if (values.compression) g.compression = values.compression;
  if (values.config) g.config = values.config;
  return { verb, name, g, args, ...(values.prefetch ? { prefetch: values.prefetch } : {}) };
}

/** Runs archive-push or archive-get; the full CLI calls this too, after its own parsing. */
export async function runArchiveCall(p: ArchiveCall): Promise<void> {
  leftOutIsNoExitStatus();
  if (p.verb === 'archive-push') {
    const walPath = p.args[0] as string;
    // A path that names no WAL file is refused before the repository is touched.
    parseWalName(basename(walPath));
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
  if (p.verb === 'archive-prefetch') {
    const [after] = p.args as [string];
    const dir = p.prefetch as string;
    await withRepo(p.g, async (repo) => void (await runFetcher(repo, p.name, after, dir)));
    return;
  }
  const [file, dest] = p.args as [string, string];
  // A name that is no WAL file is refused as it is (USAGE, exit 2): PostgreSQL asks for nothing else.
  parseWalName(file);
  try {
    await archiveGetCall(p, file, dest);
  } catch (err) {
    throw stopsRecovery(file, err);
  }
}

/**
 * PostgreSQL takes an exit status of 1 to 125 from restore_command as "not in the
 * archive": recovery ends there and the server promotes, with whatever the archive
 * holds after it missing for good. Only "not there" (exit 15) may say that; any
 * other failure (a store down, a damaged or forged segment, a wrong password) exits
 * over 125, which makes PostgreSQL stop with FATAL instead. Started again once the
 * cause is fixed, it resumes recovery where it stopped.
 */
function stopsRecovery(file: string, err: unknown): unknown {
  if (isLifeboatError(err, 'NOT_FOUND') || isLifeboatError(err, 'INTERRUPTED')) return err;
  const code = err instanceof LifeboatError ? err.code : 'FAILED';
  const message = err instanceof Error ? err.message : String(err);
  return new LifeboatError('ARCHIVE_UNREADABLE', `${file} could not be read from the archive (${code}): ${message}`, {
    hint: 'recovery stops here rather than ending early on a partial archive; fix the cause and start the server again, and it resumes (a destination of several that is gone for good: take it out of the repository\'s stores)',
    cause: err,
  });
}

async function archiveGetCall(p: ArchiveCall, file: string, dest: string): Promise<void> {
  // A prefetched segment needs neither the password nor the repository.
  if (p.prefetch && (await takePrefetched(p.prefetch, file, dest))) return;
  await withStore(p.g, async (store) => {
    const config = await Repository.readConfig(store);
    if (!(await archiveHas(store, p.name, file))) return notArchived(p, file);
    const repo = await openRepo(store, p.g, config);
    if (await archiveGet(repo, p.name, file, dest)) {
      const wal = parseWalName(file);
      if (p.prefetch && wal.kind === 'segment' && wal.segno !== undefined) {
        // This call has its segment: reading ahead must not fail it. PostgreSQL takes
        // any failure as "not in the archive" and would end recovery here; a segment
        // that cannot be read ahead fails its own call later, which names it.
        try {
          await readAhead(repo, p, file, wal.timeline, wal.segno);
        } catch (err) {
          if (!p.g.quiet) process.stderr.write(`lifeboat: reading ahead after ${file}: ${redact(err instanceof Error ? err.message : String(err))}\n`);
        }
      }
      return;
    }
    return notArchived(p, file);
  });
}

async function notArchived(p: ArchiveCall, file: string): Promise<never> {
  // A segment past the end of the archive: recovery is finishing and the spool
  // has served its purpose. (Missing history files are asked for all along.)
  if (p.prefetch && /^[0-9A-F]{24}$/.test(file)) await rm(p.prefetch, { recursive: true, force: true });
  throw new LifeboatError('NOT_FOUND', `${file} is not in the archive of ${p.name}`, {
    hint: 'normal at the end of recovery; otherwise check archive_command on the primary',
  });
}

/** Records where recovery is, starts the fetcher if none runs, and fetches the next few. */
async function readAhead(repo: Repository, p: ArchiveCall, file: string, timeline: number, segno: bigint): Promise<void> {
  const dir = p.prefetch as string;
  // Recovery is here now: a fetcher already running skips to after this segment.
  await recordWanted(dir, file);
  // A fetcher is started only when it can open the repository as this call did: the
  // options it is given are the ones below. A restore_command with others (a download
  // limit, a key command or token) gets the synchronous read-ahead instead.
  const others = Object.entries(p.g).some(([k, v]) => v !== undefined && !FORWARDED.has(k));
  if (others) return void (await prefetch(repo, p.name, file, dir, SPOOL_SEGMENTS));
  if (!(await fetcherRunning(dir))) startFetcher(fetcherArgv(p, segmentName(timeline, segno + BigInt(FIRST_SEGMENTS))));
  // The next few while the fetcher starts, so recovery does not call back for them.
  await prefetch(repo, p.name, file, dir, FIRST_SEGMENTS);
}

/** Global options fetcherArgv passes on (or that do not matter to reading). */
const FORWARDED = new Set(['config', 'repo', 'passwordFile', 'json', 'quiet', 'progress', 'compression']);

/** `lifeboat pg archive-prefetch …` for the fetcher of this call's spool, after `after`. */
function fetcherArgv(p: ArchiveCall, after: string): string[] {
  const cli = fileURLToPath(new URL('../../bin/lifeboat.js', import.meta.url));
  const g: string[] = [];
  if (p.g.config) g.push('--config', p.g.config);
  if (p.g.repo) g.push('--repo', p.g.repo);
  if (p.g.passwordFile) g.push('--password-file', p.g.passwordFile);
  return [process.execPath, ...process.execArgv, cli, 'pg', 'archive-prefetch', '--name', p.name, ...g, '--prefetch', p.prefetch as string, after];
}

/** Runs the command if it is one of ours; returns false to hand it to the full CLI. */
export async function main(argv: string[]): Promise<boolean> {
  const parsed = parse(argv);
  if (!parsed) return false;
  // PostgreSQL recycles a segment archive-push exited 0 for: never 0 unless it finished.
  const call = runArchiveCall(parsed);
  failIfStalled(call);
  try {
    await call;
    process.exitCode = 0;
  } catch (err) {
    process.exitCode = reportError(err);
  }
  // The fetcher may stop with a fetch still in flight (a store that does not answer):
  // what it waits on must not keep the process alive.
  if (parsed.verb === 'archive-prefetch') process.exit();
  return true;
}
