/**
 * The argv that runs this very CLI against the repository the current command uses:
 * for programs lifeboat starts that must call it back, such as PostgreSQL's
 * restore_command (`lifeboat pg archive-get`) in a restored or drilled cluster. Absolute
 * paths, the repository (a location, or a name of the configuration file with that
 * file) and a password file, since such a program cannot be handed a password
 * otherwise. An argv, not a string: whoever writes it into a configuration quotes it
 * once (util/shell.ts).
 */
import { realpathSync } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../errors.js';
import { parseLocation } from '../storage/registry.js';
import { findConfig, repoLocation, type GlobalOptions } from './context.js';

/**
 * `(args) => argv` for `lifeboat ARGS --repo … --password-file …`. The returned
 * function, not this one, refuses when no password file is known, so a command that
 * may not need one (a drill of SQLite sources) does not fail early. `verb` names the
 * command in that error.
 */
export async function selfCommand(g: GlobalOptions, verb: string): Promise<(args: readonly string[]) => string[]> {
  const repoArg = repoLocation(g);
  const config = await findConfig(g);
  const named = config?.repositories.get(repoArg);
  const pwFile = g.passwordFile ?? process.env.LIFEBOAT_PASSWORD_FILE ?? named?.passwordFile;
  let where: string[];
  if (named && config) where = ['--config', path.resolve(config.file), '--repo', repoArg];
  else where = ['--repo', parseLocation(repoArg).scheme === 'local' ? path.resolve(parseLocation(repoArg).rest) : repoArg];
  const cli = realpathSync(process.argv[1] ?? 'lifeboat');
  return (args) => {
    if (!pwFile) {
      throw new LifeboatError('USAGE', `${verb} needs --password-file (or LIFEBOAT_PASSWORD_FILE, or password_file in lifeboat.yaml)`, {
        hint: "PostgreSQL's restore_command runs `lifeboat pg archive-get`, which must read the password from a file",
      });
    }
    return [process.execPath, cli, ...args, ...where, '--password-file', path.resolve(pwFile)];
  };
}
