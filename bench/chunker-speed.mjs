// FastCDC's cut loop in this checkout against an older checkout's, on 256 MiB of random
// data, four rounds in one process; checks that both cut at the same places.
//   npm run build && OLD=/path/to/older/checkout node bench/chunker-speed.mjs
// (build the older checkout too: it is imported from its dist/)
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

if (!process.env.OLD) throw new Error('set OLD to an older, built checkout');
const dist = (root) => pathToFileURL(path.join(root, 'dist/chunker/fastcdc.js')).href;
const Old = await import(dist(process.env.OLD));
const New = await import(dist(path.join(import.meta.dirname, '..')));
const gear = New.gearTable(randomBytes(32));
const old = new Old.FastCDC(gear), now = new New.FastCDC(gear);
const buf = randomBytes(256 * 1024 * 1024);
const cuts = (c) => { const out = []; for (let s = 0; s < buf.length; s = c.cut(buf, s, buf.length, true)) out.push(s); return out; };
const time = (c) => { const t = performance.now(); const out = cuts(c); return [performance.now() - t, out]; };
for (let r = 1; r <= 4; r++) {
  const [a, ca] = time(old);
  const [b, cb] = time(now);
  const same = ca.length === cb.length && ca.every((v, i) => v === cb[i]);
  console.log(`round ${r}: old ${a.toFixed(0)} ms, new ${b.toFixed(0)} ms, ${cb.length} chunks, same cuts: ${same}`);
}
