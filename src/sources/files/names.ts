/** How a files snapshot is named where no source name was given. */
import type { Snapshot } from '../../repo/snapshot/snapshot.js';

/** The name a files snapshot is drilled under: its source name, else its first path. */
export function filesDrillName(s: Pick<Snapshot, 'source' | 'paths'>): string | undefined {
  return s.source.name ?? s.paths[0];
}
