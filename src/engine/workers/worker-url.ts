/**
 * Where a worker's script is. From the compiled package it is the .js next to the
 * caller; when the sources run directly (tests under vitest), it is the .ts file,
 * loaded through tsx.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function workerScript(base: string, name: string): { url: URL; execArgv: string[] } {
  const js = new URL(`./${name}.js`, base);
  if (existsSync(fileURLToPath(js))) return { url: js, execArgv: [] };
  return { url: new URL(`./${name}.ts`, base), execArgv: ['--import', 'tsx'] };
}
