/**
 * Child processes that must not outlive Lifeboat (a scratch server, pg_receivewal):
 * started through util-linux `setpriv --pdeathsig KILL` where the machine has it, so
 * the kernel kills them when we die, kill -9 included. And the small process checks
 * that go with them.
 */
import { accessSync, constants, promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';

/** `name` as a path: itself when it has a slash, else looked up on PATH (then `extra`); undefined when there is no executable. */
export function findExecutable(name: string, extra: readonly string[] = []): string | undefined {
  const runs = (p: string) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (name.includes('/')) return runs(name) ? name : undefined;
  return (process.env.PATH ?? '').split(':').concat(extra).map((d) => path.join(d || '.', name)).find(runs);
}

let setprivPath: string | null | undefined;

/** util-linux setpriv, when this machine has it (found once). */
export function setpriv(): string | null {
  if (setprivPath === undefined) setprivPath = (process.platform === 'linux' && findExecutable('setpriv', ['/usr/bin', '/bin'])) || null;
  return setprivPath;
}

/** The program and argv that start `cmd` so that it dies with this process (where setpriv exists). */
export function tiedCommand(cmd: string, args: readonly string[]): { cmd: string; args: string[]; tiedToParent: boolean } {
  const sp = setpriv();
  if (!sp) return { cmd, args: [...args], tiedToParent: false };
  return { cmd: sp, args: ['--pdeathsig', 'KILL', '--', cmd, ...args], tiedToParent: true };
}

/**
 * Whether process `pid` runs (one of another user's counts: signalling it is refused, not
 * unknown). One that has exited but is not reaped yet (a zombie) does not: it holds
 * nothing, yet answers signals until its parent waits for it, which a busy parent on a
 * loaded host does late (a killed `pg stream` under runuser kept its successor out).
 */
export function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // Exited (a zombie) by its /proc state; running when that cannot be read.
  const s = procStat(pid);
  return s === undefined || !hasExited(s);
}

/** Whether a process's /proc state says it has exited (a zombie, or dead). */
export function hasExited(s: { state: string }): boolean {
  return s.state === 'Z' || s.state === 'X';
}

/** A process's state, parent and start time (field 22, clock ticks since boot) from /proc/PID/stat; undefined when it cannot be read. */
export function procStat(pid: number): { state: string; ppid: number; start: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields follow the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] as string, ppid: Number(rest[1]), start: rest[19] as string };
  } catch {
    return undefined;
  }
}

/** The file in a scratch directory naming the process that owns it (`removeOrphanDirs`). */
export const OWNER_FILE = 'owner.pid';

/**
 * Removes the directories under `parent` named `prefix…` whose owner process (the pid
 * in their OWNER_FILE) no longer runs: scratch space of a run killed with -9. Only
 * directories of this user, not through symlinks; one being made (no owner yet) is left.
 */
export async function removeOrphanDirs(parent: string, prefix: string): Promise<void> {
  let names: string[];
  try {
    names = (await fs.readdir(parent)).filter((n) => n.startsWith(prefix));
  } catch {
    return;
  }
  for (const n of names) {
    const dir = path.join(parent, n);
    try {
      const st = await fs.lstat(dir);
      if (!st.isDirectory() || st.uid !== process.getuid?.()) continue;
      const pid = Number((await fs.readFile(path.join(dir, OWNER_FILE), 'utf8')).trim());
      if (!Number.isSafeInteger(pid) || pid <= 0 || isAlive(pid)) continue;
      await fs.rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch {
      // not ours, being made, or already gone
    }
  }
}
