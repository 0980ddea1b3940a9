/**
 * How a bucket's keys become snapshot tree paths, and back. A key's '/'-separated
 * parts become directories and a file; parts a tree cannot hold as names are
 * escaped, injectively, so every key has its own path:
 *
 * - an empty part (`a//b`, a trailing `/` of a "folder" marker) is `%`;
 * - `.` and `..` are `%.` and `%..`;
 * - a real part starting with `%` gets one more `%` in front (`%20` is `%%20`);
 * - an object whose key is also a "folder" of others (`a` beside `a/b`) is the file
 *   `%=a` (the directory keeps the name `a`).
 *
 * The exact key is also recorded on the file's node (`object.key`), and restores
 * into a bucket use that, not the path.
 */
import { sourceKey } from '../../engine/source-name.js';

/** The escaped tree names of a key's parts (the last one is the file's name). */
export function keyParts(key: string): string[] {
  return key.split('/').map(escapePart);
}

export function escapePart(part: string): string {
  if (part === '' || part === '.' || part === '..') return `%${part}`;
  return part.startsWith('%') ? `%${part}` : part;
}

/** The name of a file whose key is also a directory's name beside it. */
export function collidedName(name: string): string {
  return `%=${name}`;
}

/** How bucket sources appear in snapshots: `source.kind` bucket, `source.name` NAME. */
export function bucketSourceLabel(name: string): string {
  return `bucket:${name}`;
}

/** Checks NAME the way every source name is checked; the returned key is unused beyond that. */
export function checkBucketName(name: string): string {
  sourceKey('bucket', name);
  return name;
}
