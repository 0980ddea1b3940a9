/**
 * Child processes that must not outlive Lifeboat (a scratch server, pg_receivewal):
 * started through util-linux `setpriv --pdeathsig KILL` where the machine has it, so
 * the kernel kills them when we die, kill -9 included. And the small process checks
 * that go with them.
 */
import { accessSync, constants } from 'node:fs';
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

/** Whether process `pid` runs (one of another user's counts: signalling it is refused, not unknown). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
