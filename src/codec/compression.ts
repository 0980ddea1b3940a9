/**
 * Compression codecs. The codec id is written into every sealed object header, so a
 * repository can mix codecs and a reader never guesses. Chunks that do not shrink are
 * stored raw (codec "none"): compressing already-compressed data only costs time.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import * as zstd from 'zstd-napi';
import { createRequire } from 'node:module';
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

/**
 * The most any sealed object may expand to when its reader gives no tighter bound:
 * the largest log file, a WAL segment of PostgreSQL's largest segment size (1 GiB).
 */
export const MAX_PLAIN = 1024 * 1024 * 1024;

/**
 * Decompresses, refusing (CORRUPT) to produce or allocate more than `maxOut` bytes: a
 * few KiB of stored bytes can expand to gigabytes, so every reader passes the most it
 * can legitimately expect (a blob's recorded length, a record's cap: src/repo/limits.ts).
 */
export function decompress(data: Uint8Array, codec: number, maxOut: number, what = 'object'): Uint8Array {
  switch (codec) {
    case CODEC.none:
      if (data.length > maxOut) throw tooLarge(what, maxOut);
      return data;
    case CODEC.zstd:
      return zstdBounded(data, maxOut, what);
    case CODEC.lz4: {
      // lz4_flex's block format prepends the plaintext size (u32 LE); it allocates that much.
      if (data.length < 4) throw new LifeboatError('CORRUPT', `${what}: lz4 data too short`, { hint: CHECK_HINT });
      const declared = Buffer.from(data.buffer, data.byteOffset, 4).readUInt32LE(0);
      if (declared > maxOut) throw tooLarge(what, maxOut);
      return guard(what, () => lz4Uncompress(Buffer.from(data.buffer, data.byteOffset, data.byteLength)));
    }
    case CODEC.gzip:
      return guard(what, () => gunzipSync(data, { maxOutputLength: Math.max(1, maxOut) }), maxOut);
    default:
      throw new LifeboatError('UNSUPPORTED_FORMAT', `unknown compression codec id ${codec}`, {
        hint: 'this object was written by a newer Lifeboat; upgrade',
      });
  }
}

// zstd-napi's native binding (CommonJS, no named ESM exports): its streaming decoder
// is what lets a frame without a declared size be decoded into a bounded buffer.
const require = createRequire(import.meta.url);
const zstdBinding = require('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

// lz4 is a codec few repositories choose: its native addon loads on first use, not with
// every CLI start (the CLI starts once per job and per WAL segment).
let lz4: typeof import('lz4-napi') | undefined;
function lz4Compress(data: Buffer): Buffer {
  return (lz4 ??= require('lz4-napi') as typeof import('lz4-napi')).compressSync(data);
}
function lz4Uncompress(data: Buffer): Buffer {
  return (lz4 ??= require('lz4-napi') as typeof import('lz4-napi')).uncompressSync(data);
}

const CHECK_HINT = 'run `lifeboat check --read-data` to find damaged data';

function tooLarge(what: string, maxOut: number): LifeboatError {
  return new LifeboatError('CORRUPT', `${what}: decompresses to more than its limit of ${maxOut} bytes (damaged or forged)`, { hint: CHECK_HINT });
}

function guard(what: string, fn: () => Uint8Array, maxOut?: number): Uint8Array {
  try {
    return fn();
  } catch (err) {
    if (err instanceof LifeboatError) throw err;
    if (maxOut !== undefined && (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(what, maxOut);
    throw new LifeboatError('CORRUPT', `${what}: cannot be decompressed: ${(err as Error).message}`, { hint: CHECK_HINT, cause: err });
  }
}

/**
 * A context for a backup's chunks at `level`. Level 3 (the default) runs with 32 K-entry
 * hash and chain tables instead of 128 K and 64 K: chunks are at most a few MiB, and the
 * smaller tables stay in the CPU's caches. On the bench trees (/usr/share and
 * /usr/lib/x86_64-linux-gnu in 1 MiB pieces) that took 10% less time for 0.8% more bytes,
 * still below restic's repository of the same data (docs/performance.md). The frames are
 * ordinary zstd frames: nothing about reading them changes.
 */
function chunkCCtx(level: number): InstanceType<typeof zstdBinding.CCtx> {
  const cctx = new zstdBinding.CCtx();
  cctx.setParameter(zstdBinding.CParameter.compressionLevel, level);
  if (level === 3) {
    cctx.setParameter(zstdBinding.CParameter.hashLog, 15);
    cctx.setParameter(zstdBinding.CParameter.chainLog, 15);
  }
  return cctx;
}

/**
 * Compression into one output buffer kept and reused, for a thread that compresses
 * chunk after chunk (a backup's chunk worker). `compress()` above allocates its output
 * (and for zstd a second, trimmed copy) for every chunk: garbage of ~2x each chunk that
 * waits for the thread's GC, tens of MB per thread at the peak (docs/performance.md).
 * Here the output is a view into the kept buffer, valid until the next call; it grows
 * only to the bound of the largest chunk seen (at most the chunker's maximum).
 */
export class ReusableCompressor {
  private cctx: InstanceType<typeof zstdBinding.CCtx> | undefined;
  private out: Buffer = Buffer.alloc(0);

  constructor(private readonly c: Compression) {}

  compress(data: Uint8Array): Uint8Array {
    if (this.c.codec !== 'zstd') return compress(data, this.c);
    this.cctx ??= chunkCCtx(this.c.level);
    const bound = zstdBinding.compressBound(data.length);
    if (this.out.length < bound) this.out = Buffer.allocUnsafeSlow(bound);
    const n = this.cctx.compress2(this.out, data);
    return this.out.subarray(0, n);
  }
}

/**
 * Decompression into one output buffer kept and reused, for a thread that opens blob
 * after blob only to check and write each (a restore worker). `decompress()` allocates
 * every plaintext: garbage of ~4x the pack bytes read, which waits for the thread's GC
 * and costs a page fault per fresh page. zstd frames that declare their size (all
 * Lifeboat writes) are decoded into the kept buffer, which grows only to the largest
 * blob seen; the result is a view, valid until the next call. Anything else goes
 * through `decompress()`.
 */
export class ReusableDecompressor {
  private out: Buffer = Buffer.alloc(0);

  decompress(data: Uint8Array, codec: number, maxOut: number, what = 'object'): Uint8Array {
    if (codec !== CODEC.zstd) return decompress(data, codec, maxOut, what);
    return zstdBounded(data, maxOut, what, (size) => {
      if (this.out.length < size) this.out = Buffer.allocUnsafeSlow(size);
      return this.out.subarray(0, size);
    });
  }
}

/** One context, reused: creating one per call costs more than many small objects. */
let dctx: InstanceType<typeof zstdBinding.DCtx> | undefined;
/** Output buffer step when a frame does not declare its size (zstd's recommended size). */
const ZSTD_STEP = zstdBinding.dStreamOutSize();

/**
 * zstd, bounded: frames that declare their size (all Lifeboat writes) are checked
 * before one exact allocation; frames that do not are streamed into at most `maxOut`
 * bytes, with the decoder's window limited to what such an output could need. `output`
 * gives the buffer for a declared size (ReusableDecompressor's kept one).
 */
function zstdBounded(data: Uint8Array, maxOut: number, what: string, output: (size: number) => Buffer = (size) => Buffer.allocUnsafe(size)): Uint8Array {
  return guard(what, () => {
    dctx ??= new zstdBinding.DCtx();
    let declared: number | null = 0;
    for (let frame = data; frame.length > 0 && declared !== null; ) {
      const size = zstdBinding.getFrameContentSize(frame);
      declared = size === null ? null : declared + size;
      if (declared !== null && declared > maxOut) throw tooLarge(what, maxOut);
      frame = frame.subarray(zstdBinding.findFrameCompressedSize(frame));
    }
    if (declared !== null) {
      // The decoder stops at the buffer's end, whatever the frame claims.
      const out = output(declared);
      const n = dctx.decompress(out, data);
      if (n !== declared) throw new LifeboatError('CORRUPT', `${what}: zstd frame shorter than it declares`, { hint: CHECK_HINT });
      return out;
    }
    dctx.reset(zstdBinding.ResetDirective.sessionAndParameters);
    dctx.setParameter(zstdBinding.DParameter.windowLogMax, Math.min(27, Math.max(20, Math.ceil(Math.log2(maxOut + 1)))));
    try {
      const chunks: Buffer[] = [];
      let total = 0;
      let input = data;
      for (;;) {
        const chunk = Buffer.allocUnsafe(Math.min(ZSTD_STEP, maxOut - total + 1));
        const [left, written, read] = dctx.decompressStream(chunk, input);
        total += written;
        if (total > maxOut) throw tooLarge(what, maxOut);
        chunks.push(chunk.subarray(0, written));
        input = input.subarray(read);
        if (input.length === 0 && left === 0) break;
        if (written === 0 && read === 0) throw new LifeboatError('CORRUPT', `${what}: truncated zstd frame`, { hint: CHECK_HINT });
      }
      return Buffer.concat(chunks, total);
    } finally {
      dctx.reset(zstdBinding.ResetDirective.sessionAndParameters);
    }
  });
}
