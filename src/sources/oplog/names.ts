/** How an operation-log source is named in the repository (apart from the heavy modules, so the kind's registration stays light). */
import { sourceKey } from '../../engine/source-name.js';

/** The log-archive source for journal NAME: `logs/oplog.NAME/<generation>/<segment>`. */
export function logSource(name: string): string {
  return sourceKey('oplog', name);
}

/** The one file of an oplog marker snapshot: its consistency point as JSON (the records stay in the segments). */
export function pointPath(name: string): string {
  return `/oplog/${name}/point.json`;
}
