/**
 * Keeping PostgreSQL passwords off command lines. A DSN may carry its password (URL
 * user info, ?password=, or key=value); before a DSN goes on any argv (pg_basebackup,
 * pg_receivewal, a daemon's child lifeboat, where `ps` shows it to every local user)
 * the password is taken out and handed over in PGPASSWORD, which libpq and the node
 * client both read and which only the same user (and root) can see in /proc.
 */
import { readSecretLine } from '../../util/secret-file.js';

export interface SplitDsn {
  /** The DSN without its password (the same DSN when it had none). */
  dsn: string;
  password?: string;
}

/** libpq key=value quoting: backslash escapes the next character. */
function unquoteKv(v: string): string {
  return v.startsWith("'") ? v.slice(1, v.endsWith("'") && v.length > 1 ? -1 : undefined).replace(/\\(.)/g, '$1') : v;
}

export function splitDsnPassword(dsn: string): SplitDsn {
  if (/^postgres(?:ql)?:\/\//i.test(dsn)) {
    let url: URL;
    try {
      url = new URL(dsn);
    } catch {
      return { dsn };
    }
    let password = url.password ? decodeURIComponent(url.password) : undefined;
    url.password = '';
    const q = url.searchParams.get('password');
    if (q !== null) {
      password ??= q;
      url.searchParams.delete('password');
    }
    return password === undefined ? { dsn } : { dsn: url.toString(), password };
  }
  // key=value: "host=h password='a b' dbname=x"
  let password: string | undefined;
  const rest = dsn.replace(/(^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'?|\S+)/gi, (_, pre: string, v: string) => {
    password ??= unquoteKv(v);
    return pre;
  });
  return password === undefined ? { dsn } : { dsn: rest.replace(/\s+/g, ' ').trim(), password };
}

/** A password file's secret: its first line (like the repository password files). */
export function readPasswordFile(file: string): string {
  return readSecretLine(file, 'PostgreSQL password file', 'check password_file of the source in lifeboat.yaml (a 0600 file holding the password)');
}

/**
 * What a child program gets: the DSN for its command line, and the environment that
 * carries the password. An explicit password (a source's password_file) wins over
 * one in the DSN; with neither, the inherited PGPASSWORD or ~/.pgpass still apply.
 */
export function dsnForChild(dsn: string, password?: string): { dsn: string; env: Record<string, string> } {
  const split = splitDsnPassword(dsn);
  const pw = password ?? split.password;
  return { dsn: split.dsn, env: pw === undefined ? {} : { PGPASSWORD: pw } };
}
