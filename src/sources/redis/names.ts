/** How a Redis source is named in the repository (apart from the heavy modules, so the kind's registration stays light). */
import { sourceKey } from '../../engine/source-name.js';

/** The log-archive source for server NAME: `logs/redis.NAME/<generation>/<segment>`. */
export function logSource(name: string): string {
  return sourceKey('redis', name);
}

/** The one file of a Redis snapshot: the RDB as the server sent it, which a stock redis-server loads. */
export const RDB_FILE = 'dump.rdb';
