/**
 * Compression codecs. The codec id is written into every sealed object header, so a
 * repository can mix codecs and a reader never guesses. Chunks that do not shrink are
 * stored raw (codec "none"): compressing already-compressed data only costs time.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { compressSync as lz4Compress, uncompressSync as lz4Uncompress } from 'lz4-napi';
import * as zstd from 'zstd-napi';
import { LifeboatError } from '../errors.js';

export const CODEC = { none: 0, zstd: 1, lz4: 2, gzip: 3 } as const;
export type CodecName = keyof typeof CODEC;
export type CodecId = (typeof CODEC)[CodecName];

export interface Compression {
  codec: CodecName;
  level: number;
}

/**
 * zstd level 3 by default (zstd's own default). Measured on /usr/share + /usr/lib
 * (docs/performance.md): level 1 is ~35% faster but its output 7% larger, which
 * would make repositories bigger than restic's; level 4+ costs 25% more time for
 * under 1% smaller output. `--compression zstd:1` trades size for speed.
 */
export const DEFAULT_COMPRESSION: Compression = { codec: 'zstd', level: 3 };

const DEFAULT_LEVEL: Record<CodecName, number> = { none: 0, zstd: 3, lz4: 0, gzip: 6 };

/** Parses "zstd", "zstd:3", "lz4", "gzip:9", "none". */
export function parseCompression(spec: string): Compression {
  const [name, levelText] = spec.split(':');
  if (!name || !(name in CODEC)) {
    throw new LifeboatError('USAGE', `unknown compression "${spec}"`, {
      hint: 'use zstd, zstd:LEVEL, lz4, gzip, gzip:LEVEL or none',
    });
  }
  const codec = name as CodecName;
  const level = levelText === undefined ? DEFAULT_LEVEL[codec] : Number(levelText);
  if (!Number.isInteger(level) || level < -7 || level > 22) {
    throw new LifeboatError('USAGE', `bad compression level in "${spec}"`, {
      hint: 'zstd takes -7..22, gzip 1..9',
    });
  }
  return { codec, level };
}

export function compress(data: Uint8Array, c: Compression): Uint8Array {
  switch (c.codec) {
    case 'none':
      return data;
    case 'zstd':
      return zstd.compress(data, { compressionLevel: c.level });
    case 'lz4':
      return lz4Compress(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    case 'gzip':
      return gzipSync(data, { level: c.level });
  }
}

export function decompress(data: Uint8Array, codec: number, maxOut = Number.MAX_SAFE_INTEGER, what = 'object'): Uint8Array {
  const out = decompressAny(data, codec);
  if (out.length > maxOut) {
    throw new LifeboatError('CORRUPT', `${what}: expands to ${out.length} bytes, more than the ${maxOut} it may hold`, {
      hint: 'the object is damaged or was crafted; run `lifeboat check --read-data`',
    });
  }
  return out;
}

function decompressAny(data: Uint8Array, codec: number): Uint8Array {
  switch (codec) {
    case CODEC.none:
      return data;
    case CODEC.zstd:
      return zstd.decompress(data);
    case CODEC.lz4:
      return lz4Uncompress(data);
    case CODEC.gzip:
      return gunzipSync(data);
    default:
      throw new LifeboatError('UNSUPPORTED_FORMAT', `unknown compression codec id ${codec}`, {
        hint: 'this object was written by a newer Lifeboat; upgrade',
      });
  }
}
