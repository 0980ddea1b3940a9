/** Running a helper program to completion and keeping what it said on stderr. */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * The coreutils program NAME (`sync`, `mkfifo`) by its own path, never the first found
 * on the PATH: a restore run as root with a PATH that holds a directory someone else can
 * write would otherwise run their program.
 */
export function coreutil(name: string): string {
  return [`/usr/bin/${name}`, `/bin/${name}`].find((p) => existsSync(p)) ?? `/usr/bin/${name}`;
}

/** `env` is added to this process's environment (secrets go there, never on argv). */
export function runTool(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}
