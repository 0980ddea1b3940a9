/** How a PostgreSQL source is named in the repository. */
import type { GraphFacts } from '../graph/record.js';
import { sourceKey } from '../../engine/source-name.js';

/** The log-archive source for cluster NAME: `logs/postgres.NAME/...`. */
export function logSource(name: string): string {
  return sourceKey('postgres', name);
}

/**
 * WAL received by `pg stream` lives apart from archive_command's: a streamed segment
 * ends in zeros where the server's own file may hold a recycled tail, so the same
 * name can legitimately differ in content, and archive-push must stay strict.
 */
export function streamSource(name: string): string {
  return `${logSource(name)}~stream`;
}

/**
 * Where `pg timelines --move-aside` keeps a timeline that is not production's (a
 * restored copy that archived into this archive): out of every restore's reach, yet
 * never deleted, so `--move-back` can return it. One place per original source, so
 * archived and streamed files go back where they came from.
 */
export function asideSource(source: string): string {
  return `${source}~aside`;
}

export function timelineDir(timeline: number): string {
  return timeline.toString(16).toUpperCase().padStart(8, '0');
}

/** What a PostgreSQL base backup records in its snapshot manifest. */
export interface PgConsistency {
  startLsn: string;
  stopLsn: string;
  timeline: number;
  systemId: string;
  pgVersion: number;
  pgMajor: number;
  walSegSize: number;
  dataDirectory: string;
  startTime: string;
  stopTime: string;
  backupLabel: string;
  tablespaceMap: string;
  /** A declared graph: its declaration and the queries' latency on the source; no counts (docs/graph.md). */
  graph?: GraphFacts;
}
