/**
 * Where a Redis password comes from: a file (password_file, --redis-password-file) or
 * the environment, never argv or the URL. Apart from connection.ts so that the kind's
 * registration (kind.ts's childEnv) loads no network code at start-up.
 */
import { readSecretLine } from '../../util/secret-file.js';

/** The environment variables a password is read from, in order (REDISCLI_AUTH is redis-cli's own). */
export const PASSWORD_ENV = ['LIFEBOAT_REDIS_PASSWORD', 'REDISCLI_AUTH'] as const;

/** A Redis password file's first line; NOT_FOUND naming the file when it cannot be read. */
export function readRedisPasswordFile(file: string): string {
  return readSecretLine(file, 'Redis password file', 'check password_file of the source (a 0600 file whose first line is the password)');
}

/** The password to log in with: the file when one is named, else the environment, else none. */
export function redisPassword(opts: { passwordFile?: string | undefined; env?: NodeJS.ProcessEnv }): string | undefined {
  if (opts.passwordFile !== undefined) return readRedisPasswordFile(opts.passwordFile);
  const env = opts.env ?? process.env;
  for (const name of PASSWORD_ENV) {
    const v = env[name];
    if (v) return v;
  }
  return undefined;
}
