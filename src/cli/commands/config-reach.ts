/**
 * `config check` beyond the syntax: a file that parses can still name a repository
 * that is not there, a password file that was never copied, a SQLite file or a path
 * that moved, a PostgreSQL server that cannot be reached. Each such problem would
 * surface only at the first scheduled run (often at night); here it is one line each.
 * `--offline` skips all of this (a file written for another machine).
 */
import { accessSync, constants, statSync } from 'node:fs';
import * as path from 'node:path';
import type { LifeboatConfig } from '../../config/config.js';
import { errno } from '../../errors.js';
import { registerBuiltinStores } from '../../storage/builtin.js';
import { openStore, parseLocation } from '../../storage/registry.js';
import { sourceKind } from '../../sources/registry.js';

export interface Problem {
  /** What it is about: repository NAME, source NAME, server. */
  subject: string;
  message: string;
}

/** How long one network probe (a store, a PostgreSQL server) may take before it counts as unreachable. */
const PROBE_MS = 10_000;

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer in ${PROBE_MS / 1000} s`)), PROBE_MS)));
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const why = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A file or directory that must exist (and be readable): its problem, or undefined. */
function fileProblem(file: string, kind: 'file' | 'directory' | 'any'): string | undefined {
  try {
    const st = statSync(file);
    if (kind === 'file' && !st.isFile()) return `${file} is not a file`;
    if (kind === 'directory' && !st.isDirectory()) return `${file} is not a directory`;
    accessSync(file, constants.R_OK);
    return undefined;
  } catch (err) {
    const code = errno(err);
    return code === 'ENOENT' ? `${file} does not exist` : `${file} cannot be read (${code ?? why(err)})`;
  }
}

async function storeProblem(location: string): Promise<string | undefined> {
  const { scheme, rest } = parseLocation(location);
  if (scheme === 'local') {
    const missing = fileProblem(path.resolve(rest), 'directory');
    if (missing) return `${missing} (\`lifeboat init\` creates a repository there)`;
  }
  registerBuiltinStores();
  try {
    const store = await within(openStore(location), location);
    try {
      const config = await within(store.stat('config'), location);
      return config ? undefined : `${location} holds no repository (no config object; \`lifeboat init\` creates one)`;
    } finally {
      await store.close().catch(() => {});
    }
  } catch (err) {
    return `${location} cannot be reached: ${why(err)}`;
  }
}

/** Every problem found, in the order of the file. Never throws for what it finds. */
export async function reachability(c: LifeboatConfig): Promise<Problem[]> {
  const out: Problem[] = [];
  const add = (subject: string, message: string | undefined) => {
    if (message) out.push({ subject, message });
  };
  for (const r of c.repositories.values()) {
    const subject = `repository ${r.name}`;
    if (r.passwordFile) add(subject, fileProblem(r.passwordFile, 'file')?.replace(/^/, 'password file '));
    for (const s of r.stores) add(subject, await storeProblem(s));
  }
  for (const s of c.sources.values()) {
    const subject = `source ${s.name}`;
    // The kind knows its places and servers.
    const resolve = (f: string) => path.resolve(path.dirname(c.file), f);
    for (const message of await sourceKind(s.kind).reach(s, { file: fileProblem, within, resolve })) add(subject, message);
  }
  if (c.server.tls) for (const f of [c.server.tls.cert, c.server.tls.key]) add('server', fileProblem(f, 'file')?.replace(/^/, 'TLS '));
  return out;
}
