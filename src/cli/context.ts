/**
 * What every command shares: the global options (repository, password or other key,
 * output format, compression), resolving the password from flag, environment or
 * prompt, and opening the store and repository.
 *
 * What opens a format 2 repository is chosen here, from local settings only: a
 * key command (--key-command, LIFEBOAT_KEY_COMMAND, key_command in lifeboat.yaml), a
 * PKCS#11 key (--pkcs11-module and friends), or else a password. Nothing stored in the
 * repository decides which program runs or which library loads.
 */
import { existsSync, readFileSync } from 'node:fs';
import { LifeboatError, errno } from '../errors.js';
import { parseCompression } from '../codec/compression.js';
import { registerBuiltinStores } from '../storage/builtin.js';
import { leftOut } from './left-out.js';
import { openComposite, type StoreSpec } from '../storage/compose.js';
import type { LifeboatConfig, RepositoryConfig } from '../config/config.js';
import type { Store } from '../storage/store.js';
import { Repository } from '../repo/repository.js';
import type { RepoConfig } from '../repo/format.js';
import type { SlotOpener } from '../repo/keyring.js';
import { commandOpener, parseCommand } from '../repo/key-command.js';
import type { Pkcs11Options } from '../repo/key-pkcs11.js';

export interface GlobalOptions {
  repo?: string;
  passwordFile?: string;
  json?: boolean;
  quiet?: boolean;
  /** auto | json | none: how progress shows (output/render.ts). */
  progress?: string;
  compression?: string;
  config?: string;
  limitUpload?: string;
  limitDownload?: string;
  appendOnly?: boolean;
  keyCommand?: string;
  pkcs11Module?: string;
  pkcs11Token?: string;
  pkcs11KeyLabel?: string;
  pkcs11PinFile?: string;
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
  if (!config) {
    // Sources in the file are read by their kinds: register them first (the lean entry comes here too).
    await import('../sources/all.js');
    loadedConfigs.set(file, (config = (await import('../config/config.js')).loadConfig(file)));
  }
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
      leftOut(store.location, err.message);
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

/** A warning on stderr: one line, then what to do about it when there is something. */
export function cliWarn(message: string): void {
  process.stderr.write(`warning: ${message}\n`);
}

/** The key command, from flag, environment or the named repository's configuration. */
export async function keyCommand(opts: GlobalOptions): Promise<string[] | undefined> {
  const flag = opts.keyCommand ?? process.env.LIFEBOAT_KEY_COMMAND;
  if (flag !== undefined && flag !== '') return parseCommand(flag, opts.keyCommand !== undefined ? '--key-command' : 'LIFEBOAT_KEY_COMMAND');
  const named = (await namedRepository(opts))?.keyCommand;
  return named === undefined ? undefined : parseCommand(named, 'key_command');
}

/** The token PIN: from a file or the environment, never from a flag (argv is visible to every user of the host). */
function pkcs11Pin(opts: GlobalOptions): string {
  const file = opts.pkcs11PinFile ?? process.env.LIFEBOAT_PKCS11_PIN_FILE;
  if (file !== undefined) {
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new LifeboatError('USAGE', `cannot read PIN file ${file}: ${errno(err) ?? String(err)}`, { hint: 'check the path given to --pkcs11-pin-file / LIFEBOAT_PKCS11_PIN_FILE' });
    }
  }
  if (process.env.LIFEBOAT_PKCS11_PIN !== undefined) return process.env.LIFEBOAT_PKCS11_PIN;
  throw new LifeboatError('NO_PASSWORD', 'no PKCS#11 PIN given', { hint: 'use --pkcs11-pin-file F, LIFEBOAT_PKCS11_PIN_FILE or LIFEBOAT_PKCS11_PIN' });
}

/** The local token settings, when a PKCS#11 module is configured. */
export function pkcs11Options(opts: GlobalOptions): Pkcs11Options | undefined {
  const module = opts.pkcs11Module ?? process.env.LIFEBOAT_PKCS11_MODULE;
  if (!module) return undefined;
  const token = opts.pkcs11Token ?? process.env.LIFEBOAT_PKCS11_TOKEN;
  if (!token) throw new LifeboatError('USAGE', 'a PKCS#11 module was given without a token', { hint: 'add --pkcs11-token LABEL (or LIFEBOAT_PKCS11_TOKEN)' });
  // "lifeboat" as the default label: one key per token is the common case, and docs/keys.md creates it under that name.
  const keyLabel = opts.pkcs11KeyLabel ?? process.env.LIFEBOAT_PKCS11_KEY_LABEL ?? 'lifeboat';
  return { module, token, keyLabel, pin: pkcs11Pin(opts) };
}

/**
 * How to open: `undefined` means a password. `pkcs11: false` when the PKCS#11 options
 * describe a slot being added (`key add --pkcs11`), not the key that opens.
 */
export async function keyOpener(opts: GlobalOptions, use: { pkcs11?: boolean } = {}): Promise<SlotOpener | undefined> {
  const cmd = await keyCommand(opts);
  const p11 = use.pkcs11 === false ? undefined : pkcs11Options(opts);
  if (cmd && p11) {
    throw new LifeboatError('USAGE', 'both a key command and a PKCS#11 module were given', { hint: 'open with one of them: drop --key-command/LIFEBOAT_KEY_COMMAND or --pkcs11-module/LIFEBOAT_PKCS11_MODULE' });
  }
  if (cmd) return commandOpener(cmd);
  if (p11) return (await import('../repo/key-pkcs11.js')).pkcs11Opener(p11);
  return undefined;
}

/** Opens the repository whose config was just read, with a key opener or a password. */
export async function openRepo(store: Store, opts: GlobalOptions, config: RepoConfig, use: RepoUse = {}): Promise<Repository> {
  const opener = await keyOpener(opts, use);
  if (opener && config.version !== 2) {
    throw new LifeboatError('UNSUPPORTED_FORMAT', `${opener.type === 'command' ? 'key commands' : 'PKCS#11 keys'} open repositories of format version 2 only; this one is version ${config.version}`, {
      hint: 'open it with its password, or upgrade it with `lifeboat migrate`',
    });
  }
  const repo = await Repository.open(store, opener ?? (await getPassword(opts)), config, cliWarn);
  // Refused before the command does anything: a write-only key writes nothing here.
  if (repo.role === 'write' && !use.writeOnly) throw writeOnlyRefused(use.command);
  // A skipped damaged object is named on stderr even with --json or --quiet: it is damage.
  repo.onWarning = cliWarn;
  if (opts.compression) repo.compression = parseCompression(opts.compression);
  return repo;
}

/**
 * What a command needs of the key: `pkcs11: false` when the PKCS#11 options describe
 * something else (a new slot); `writeOnly: true` for the commands a write-only key may
 * run (backup), which never read the repository's sealed objects.
 */
export interface RepoUse {
  pkcs11?: boolean;
  writeOnly?: boolean;
  /** The command's name, for the refusal. */
  command?: string;
}

export function writeOnlyRefused(command = 'this command'): LifeboatError {
  return new LifeboatError('PERMISSION', `${command} needs a key that can read; this key slot is write-only`, {
    hint: 'this key may only add backups (`lifeboat backup`); use an administrator key to list, restore, check or prune',
  });
}

export async function withRepo<T>(opts: GlobalOptions, fn: (repo: Repository) => Promise<T>, use: RepoUse = {}): Promise<T> {
  return withStore(opts, async (store) => {
    // The config is read before asking for a password, so a wrong location fails fast.
    return fn(await openRepo(store, opts, await Repository.readConfig(store), use));
  });
}
