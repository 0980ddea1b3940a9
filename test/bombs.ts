/**
 * Decompression bombs for tests: a few KiB of zstd that expand to more than 1 GiB of
 * zeros, with and without the content size in the frame header, built by streaming
 * (the 1.1 GiB never exists in memory here).
 */
import { createRequire } from 'node:module';

const zstd = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

export const BOMB_SIZE = 1152 * 1024 * 1024; // 1.125 GiB

export function zstdBomb(declareSize: boolean, total = BOMB_SIZE): Buffer {
  const cctx = new zstd.CCtx();
  cctx.setParameter(zstd.CParameter.compressionLevel, 1);
  if (declareSize) cctx.setPledgedSrcSize(total);
  const zeros = Buffer.alloc(1 << 20); // several calls: without a pledge, the frame then declares no size
  const out = Buffer.alloc(1 << 20);
  const parts: Buffer[] = [];
  for (let done = 0; done < total; ) {
    let input = zeros.subarray(0, Math.min(zeros.length, total - done));
    done += input.length;
    const last = done >= total;
    for (;;) {
      const [left, produced, consumed] = cctx.compressStream2(out, input, last ? zstd.EndDirective.end : zstd.EndDirective.continue);
      parts.push(Buffer.from(out.subarray(0, produced)));
      input = input.subarray(consumed);
      if (input.length === 0 && (!last || left === 0)) break;
    }
  }
  return Buffer.concat(parts);
}

/** The content size a zstd frame declares, or null. */
export function declaredSize(frame: Uint8Array): number | null {
  return zstd.getFrameContentSize(frame);
}
