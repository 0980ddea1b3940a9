/** Where a command source's dump lives in its snapshot (apart from the heavy modules, so registration stays light). */
import { checkSourceName } from '../../engine/source-name.js';

/** The one file of a command snapshot: the dump's stdout as it was written. */
export function dumpPath(name: string): string {
  return `/command/${checkSourceName(name)}/stdout`;
}
