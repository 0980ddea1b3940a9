/** How a SQLite source is named in the repository (apart from backup.ts, so the kind's registration stays light). */
import { sourceKey } from '../../engine/source-name.js';

/** The log-archive source for database NAME: `logs/sqlite.NAME/...`. */
export function logSource(name: string): string {
  return sourceKey('sqlite', name);
}
