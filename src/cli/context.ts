/**
 * What every command shares: the global options (repository, password, output
 * format, compression), resolving the password from flag, environment or prompt, and
 * opening the store and repository.
 */
import { existsSync, readFileSync } from 'node:fs';
import { LifeboatError, errno } from '../errors.js';
import { parseCompression } from '../codec/compression.js';
import { registerBuiltinStores } from '../storage/builtin.js';
import { openComposite, type StoreSpec } from '../storage/compose.js';
import type { LifeboatConfig, RepositoryConfig } from '../config/config.js';
import type { Store } from '../storage/store.js';
import { Repository } from '../repo/repository.js';
import type { RepoConfig } from '../repo/format.js';

export interface GlobalOptions {
  repo?: string;
  passwordFile?: string;
  json?: boolean;
  quiet?: boolean;
  compression?: string;
  config?: string;
  limitUpload?: string;
  limitDownload?: string;
  appendOnly?: boolean;
}

export function repoLocation(opts: GlobalOptions): string {
  const loc = opts.repo ?? process.env.LIFEBOAT_REPOSITORY;
  if (!loc) {
    throw new LifeboatError('USAGE', 'no repository given', { hint: 'pass --repo DIR or set LIFEBOAT_REPOSITORY' });
  }
  return loc;
}

function readPasswordFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new LifeboatError('USAGE', `cannot read password file ${file}: ${errno(err) ?? String(err)}`, {
      hint: 'check the path given to --password-file / LIFEBOAT_PASSWORD_FILE',
    });
  }
}

/** Prompts on the terminal without echo. */
async function prompt(question: string): Promise<string> {
  const { stdin, stderr } = process;
  stderr.write(question);
  stdin.setRawMode?.(true);
  stdin.resume();
  let out = '';
  return new Promise<string>((resolve, reject) => {
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          stdin.off('data', onData);
          stdin.setRawMode?.(false);
          stdin.pause();
          stderr.write('\n');
          resolve(out);
          return;
        }
        if (ch === '\u0003') {
          stdin.setRawMode?.(false);
          reject(new LifeboatError('INTERRUPTED', 'interrupted'));
          return;
        }
        if (ch === '\u007f') out = out.slice(0, -1);
        else out += ch;
      }
    };
    stdin.on('data', onData);
  });
}

export async function getPassword(opts: GlobalOptions, purpose: 'open' | 'new' = 'open'): Promise<string> {
  const file = opts.passwordFile ?? process.env.LIFEBOAT_PASSWORD_FILE ?? (await namedRepository(opts))?.passwordFile;
  if (file) return readPasswordFile(file);
  if (process.env.LIFEBOAT_PASSWORD !== undefined) return process.env.LIFEBOAT_PASSWORD;
  if (process.stdin.isTTY && process.stderr.isTTY) {
    const pw = await prompt(purpose === 'new' ? 'new repository password: ' : 'repository password: ');
    if (purpose === 'new' && (await prompt('enter it again: ')) !== pw) {
      throw new LifeboatError('USAGE', 'the passwords did not match');
    }
    return pw;
  }
  throw new LifeboatError('NO_PASSWORD', 'no password given', {
    hint: 'use --password-file F, LIFEBOAT_PASSWORD_FILE or LIFEBOAT_PASSWORD (no terminal to prompt on)',
  });
}

/** Reads a second password (for key add / passwd) from its own file or a prompt. */
export async function getNewPassword(file: string | undefined): Promise<string> {
  if (file) return readPasswordFile(file);
  if (process.env.LIFEBOAT_NEW_PASSWORD !== undefined) return process.env.LIFEBOAT_NEW_PASSWORD;
  if (process.stdin.isTTY && process.stderr.isTTY) {
    const pw = await prompt('new password: ');
    if ((await prompt('enter it again: ')) !== pw) throw new LifeboatError('USAGE', 'the passwords did not match');
    return pw;
  }
  throw new LifeboatError('NO_PASSWORD', 'no new password given', {
    hint: 'use --new-password-file F or LIFEBOAT_NEW_PASSWORD',
  });
}

/**
 * The configuration file: --config, LIFEBOAT_CONFIG, or ./lifeboat.yaml when it
 * exists. Undefined when there is none.
 */
const loadedConfigs = new Map<string, LifeboatConfig>();

export async function findConfig(opts: GlobalOptions): Promise<LifeboatConfig | undefined> {
  const file = opts.config ?? process.env.LIFEBOAT_CONFIG ?? (existsSync('lifeboat.yaml') ? 'lifeboat.yaml' : undefined);
  if (file === undefined) return undefined;
  // Loaded only when there is a file: archive_command runs once per WAL segment.
  let config = loadedConfigs.get(file);
  if (!config) loadedConfigs.set(file, (config = (await import('../config/config.js')).loadConfig(file)));
  return config;
}

/** The repository of the configuration file that --repo names, if it names one. */
async function namedRepository(opts: GlobalOptions): Promise<RepositoryConfig | undefined> {
  const name = opts.repo ?? process.env.LIFEBOAT_REPOSITORY;
  return name === undefined ? undefined : (await findConfig(opts))?.repositories.get(name);
}

function kib(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new LifeboatError('USAGE', `${flag} "${text}" is not a whole number of KiB/s`, { hint: 'e.g. --limit-upload 10240 for 10 MiB/s; 0 for no limit' });
  return n;
}

/**
 * What --repo names: a repository of the configuration file (one or several
 * destinations), or a location. Flags override the file's limits.
 */
export async function storeSpec(opts: GlobalOptions): Promise<StoreSpec> {
  const name = repoLocation(opts);
  const named = await namedRepository(opts);
  const up = kib(opts.limitUpload, '--limit-upload') ?? named?.limitUploadKiB;
  const down = kib(opts.limitDownload, '--limit-download') ?? named?.limitDownloadKiB;
  const retries = process.env.LIFEBOAT_STORE_RETRIES;
  return {
    locations: named ? named.stores : [name],
    ...(named ? { writeQuorum: named.writeQuorum } : {}),
    ...(up ? { limitUploadKiB: up } : {}),
    ...(down ? { limitDownloadKiB: down } : {}),
    appendOnly: (opts.appendOnly ?? false) || (named?.appendOnly ?? false),
    ...(retries !== undefined ? { attempts: Math.max(1, Number(retries) || 1) } : {}),
    onDegraded: (store, err) => {
      console.error(`lifeboat: warning: ${store.location} left out for the rest of this run: ${err.message}\n  hint: the other destinations carry on; run \`lifeboat repair\` once it is back`);
    },
  };
}

export async function withStore<T>(opts: GlobalOptions, fn: (store: Store) => Promise<T>): Promise<T> {
  registerBuiltinStores();
  const store = await openComposite(await storeSpec(opts));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Asks for the password and opens the repository whose config was just read. */
export async function openRepo(store: Store, opts: GlobalOptions, config: RepoConfig): Promise<Repository> {
  const repo = await Repository.open(store, await getPassword(opts), config);
  // A skipped damaged object is named on stderr even with --json or --quiet: it is damage.
  repo.onWarning = (message) => process.stderr.write(`warning: ${message}\n`);
  if (opts.compression) repo.compression = parseCompression(opts.compression);
  return repo;
}

export async function withRepo<T>(opts: GlobalOptions, fn: (repo: Repository) => Promise<T>): Promise<T> {
  return withStore(opts, async (store) => {
    // The config is read before asking for a password, so a wrong location fails fast.
    return fn(await openRepo(store, opts, await Repository.readConfig(store)));
  });
}
