/**
 * Private directories for spools: where `pg stream` keeps WAL before it is shipped
 * and `pg backup --remote` stages a cluster. A guessable path in a shared /tmp
 * (/tmp/lifeboat-stream-NAME) lets any local user plant a symlink or a directory of
 * their own there and read or swap what Lifeboat writes; so spools live under a
 * directory only this user can enter, and every directory used is checked to be a
 * real directory (not a symlink) owned by this user with no access for others.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LifeboatError, errno } from '../errors.js';

/**
 * The durable per-user root for spools: $XDG_STATE_HOME/lifeboat, else
 * ~/.local/state/lifeboat. Durable (not $XDG_RUNTIME_DIR, a tmpfs cleared at logout)
 * because a stream spool can hold WAL the server has already released: a successor
 * streamer must find it there. Undefined without a home directory.
 */
export function stateRoot(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME)) return path.join(env.XDG_STATE_HOME, 'lifeboat');
  const home = env.HOME ?? safeHomedir();
  return home && path.isAbsolute(home) ? path.join(home, '.local', 'state', 'lifeboat') : undefined;
}

function safeHomedir(): string | undefined {
  try {
    return os.homedir() || undefined;
  } catch {
    return undefined;
  }
}

/** Throws unless DIR is a real directory owned by this user that no one else can use. */
export async function assertPrivate(dir: string): Promise<void> {
  const st = await fs.lstat(dir);
  const uid = process.getuid?.();
  const problem = st.isSymbolicLink()
    ? 'is a symbolic link'
    : !st.isDirectory()
      ? 'is not a directory'
      : uid !== undefined && st.uid !== uid
        ? `belongs to uid ${st.uid}, not to this user (${uid})`
        : (st.mode & 0o077) !== 0
          ? `is open to other users (mode ${(st.mode & 0o777).toString(8)})`
          : undefined;
  if (problem) {
    throw new LifeboatError('UNSAFE_SPOOL', `${dir} ${problem}; refusing to use it as a spool`, {
      hint: 'give --spool a directory of your own (mode 0700), or remove this one',
    });
  }
}

/** Creates DIR (and missing parents) with mode 0700, or checks the one there; returns it. */
export async function privateDir(dir: string): Promise<string> {
  try {
    await fs.mkdir(dir, { mode: 0o700 });
  } catch (err) {
    if (errno(err) === 'ENOENT') {
      await fs.mkdir(path.dirname(dir), { recursive: true, mode: 0o700 });
      return privateDir(dir);
    }
    if (errno(err) !== 'EEXIST') throw err;
  }
  await assertPrivate(dir);
  return dir;
}

/**
 * A spool for one source: `<state root>/spool/<kind>-<name>`, stable across runs (a
 * successor takes over what a dead run left), in a private parent. Without a home
 * directory, `<kind>-<name>` inside a fresh mkdtemp directory under the system temp
 * directory (0700, so its listable random name gives no way in); `temporary` is then
 * that directory, for the caller to remove, and nothing carries over between runs.
 * The spool itself is not created: callers remove or create it.
 */
export async function spoolFor(kind: 'stream' | 'basebackup', name: string): Promise<{ dir: string; temporary?: string }> {
  const root = stateRoot();
  if (root) {
    await privateDir(root);
    const spools = await privateDir(path.join(root, 'spool'));
    return { dir: path.join(spools, `${kind}-${name}`) };
  }
  const temporary = await fs.mkdtemp(path.join(os.tmpdir(), 'lifeboat-'));
  return { dir: path.join(temporary, `${kind}-${name}`), temporary };
}
