/**
 * Which arguments of a replicated command are keys, so `redis history` can say what a
 * transaction touched without ever showing a value (values may be secrets).
 *
 * The table covers the write commands a Redis 7 master propagates (effects: SET … PXAT
 * rather than EXPIRE, SREM for SPOP, DEL or UNLINK for expired keys, MULTI/EXEC around a
 * script's effects). A command missing from it is shown by name only, its key count
 * unknown: guessing could print a value where a key was expected.
 */

/** Where the keys are, by the command's argument list (args[0] is the name). */
type Spec = 'first' | 'all' | 'firstTwo' | 'pairs' | 'none' | ((args: readonly Buffer[]) => number[]);

const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
/** `dest numkeys key…` (ZUNIONSTORE and kin). */
const destNumkeys = (args: readonly Buffer[]) => [1, ...range(3, 3 + numberAt(args, 2))];
/** `numkeys key…` (LMPOP, ZMPOP, SINTERCARD). */
const numkeysFirst = (args: readonly Buffer[]) => range(2, 2 + numberAt(args, 1));

const FIRST = [
  'set', 'setex', 'psetex', 'setnx', 'append', 'incr', 'decr', 'incrby', 'decrby', 'incrbyfloat', 'getset', 'getdel', 'getex',
  'setrange', 'setbit', 'bitfield', 'expire', 'pexpire', 'expireat', 'pexpireat', 'persist',
  'lpush', 'rpush', 'lpushx', 'rpushx', 'lpop', 'rpop', 'lset', 'lrem', 'ltrim', 'linsert',
  'sadd', 'srem', 'spop',
  'hset', 'hsetnx', 'hmset', 'hdel', 'hincrby', 'hincrbyfloat',
  'zadd', 'zrem', 'zincrby', 'zremrangebyscore', 'zremrangebyrank', 'zremrangebylex', 'zpopmin', 'zpopmax',
  'xadd', 'xdel', 'xtrim', 'xsetid', 'xack', 'xclaim', 'xautoclaim',
  'pfadd', 'geoadd', 'restore', 'restore-asking', 'sort',
];

const SPECS = new Map<string, Spec>([
  ...FIRST.map((c) => [c, 'first'] as const),
  ...['del', 'unlink', 'pfmerge', 'sinterstore', 'sunionstore', 'sdiffstore', 'touch', 'watch'].map((c) => [c, 'all'] as const),
  ...['rename', 'renamenx', 'copy', 'smove', 'lmove', 'rpoplpush', 'blmove', 'brpoplpush', 'zrangestore', 'geosearchstore'].map((c) => [c, 'firstTwo'] as const),
  ...['mset', 'msetnx'].map((c) => [c, 'pairs'] as const),
  ...['flushall', 'flushdb', 'swapdb', 'select', 'ping', 'multi', 'exec', 'publish', 'spublish', 'script', 'function', 'replconf'].map((c) => [c, 'none'] as const),
  ['zunionstore', destNumkeys],
  ['zinterstore', destNumkeys],
  ['zdiffstore', destNumkeys],
  ['lmpop', numkeysFirst],
  ['zmpop', numkeysFirst],
  ['bitop', (args) => range(2, args.length)],
  ['xgroup', (args) => (args.length > 2 ? [2] : [])],
] satisfies Array<readonly [string, Spec]>);

function numberAt(args: readonly Buffer[], i: number): number {
  const text = args[i]?.toString('latin1') ?? '';
  const n = /^\d{1,6}$/.test(text) ? Number(text) : 0;
  return Math.min(n, args.length);
}

/** The indexes of `args` that are keys, or undefined when the command is not in the table. */
export function keyIndexes(args: readonly Buffer[]): number[] | undefined {
  const name = args[0]?.toString('latin1').toLowerCase() ?? '';
  const spec = SPECS.get(name);
  if (spec === undefined) return undefined;
  const n = args.length;
  if (spec === 'none') return [];
  if (spec === 'first') return n > 1 ? [1] : [];
  if (spec === 'all') return range(1, n);
  if (spec === 'firstTwo') return range(1, Math.min(3, n));
  if (spec === 'pairs') return range(1, n).filter((i) => i % 2 === 1);
  return spec(args).filter((i) => i >= 1 && i < n);
}

/** Longest key shown, in characters; longer ones end in "…". */
export const MAX_KEY_CHARS = 100;

/** A key as text an operator can read and a terminal cannot be steered by: printable ASCII as is, other bytes as \xNN. */
export function showKey(key: Buffer): string {
  let out = '';
  for (const b of key.subarray(0, MAX_KEY_CHARS)) {
    out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : b === 0x5c ? '\\\\' : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return key.length > MAX_KEY_CHARS ? `${out}…` : out;
}
