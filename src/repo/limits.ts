/**
 * The most a reader accepts from one stored object, per kind. Every sealed object is
 * opened with one of these bounds (blobs with their recorded length), so a small
 * damaged or forged object cannot make a command allocate gigabytes: decompression
 * stops at the bound and the object is reported as damaged (docs/format.md, "Bounds").
 * Each bound is far above what this version writes.
 */

const MiB = 1024 * 1024;

/**
 * Data blobs: at most the chunker's maximum (8 MiB by default, `config.chunker.max`),
 * and never more than this, whatever a config says.
 */
export const MAX_DATA_BLOB = 64 * MiB;

/** Tree blobs: one directory listing, about 300 bytes per entry (some 200 000 entries). */
export const MAX_TREE_BLOB = 64 * MiB;

/**
 * Index files: 45 bytes per blob, so about 6 million blobs (backups write one file
 * per 8 packs; a prune may write one large file for every blob it repacked).
 */
export const MAX_INDEX_FILE = 256 * MiB;

/** Lists of packs (retiring lists, `state/verified`): about 70 bytes per pack. */
export const MAX_PACK_LIST = 64 * MiB;

/** Small JSON records: snapshot manifests, drill records, the config copy. */
export const MAX_RECORD = 16 * MiB;

/**
 * Log files (WAL segments, SQLite log segments): PostgreSQL's largest WAL segment
 * size is 1 GiB; SQLite segments are merged up to 32 MiB.
 */
export const MAX_LOG_FILE = 1024 * MiB;

/** The bound for a data blob of a repository whose chunker cuts at `chunkerMax`. */
export function dataBlobLimit(chunkerMax: number): number {
  return Math.min(MAX_DATA_BLOB, Math.max(1, chunkerMax));
}
