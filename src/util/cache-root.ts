/**
 * The user's cache directory for Lifeboat: LIFEBOAT_CACHE_DIR, else
 * $XDG_CACHE_HOME/lifeboat, else ~/.cache/lifeboat. It holds the write-only client's
 * cache (engine/backup/write-cache.ts), the on-disk blob index (repo/index/) and the
 * packs being written for a store that is not local (repo/pack/spill.ts).
 */
import * as os from 'node:os';
import * as path from 'node:path';

export function cacheRoot(): string {
  if (process.env.LIFEBOAT_CACHE_DIR) return process.env.LIFEBOAT_CACHE_DIR;
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache'), 'lifeboat');
}
