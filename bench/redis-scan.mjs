/**
 * CPU to find command ends in a Redis replication stream: the value reader (resp.ts)
 * against the scanner redis replicate uses (scanner.ts), on 200 000 SETs in 16 KiB chunks.
 * Run: npm run build && node bench/redis-scan.mjs
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const DIST = path.join(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..'), 'dist', 'sources', 'redis');
const { RespReader, commandName, encodeCommand } = await import(path.join(DIST, 'resp.js'));
const { CommandScanner } = await import(path.join(DIST, 'scanner.js'));

const stream = Buffer.concat(Array.from({ length: 200_000 }, (_, i) => encodeCommand(['SET', `key:${i % 100_000}`, 'xxx'])));
const chunks = [];
for (let i = 0; i < stream.length; i += 16384) chunks.push(stream.subarray(i, i + 16384));
const cpuMs = (fn) => {
  const t = process.cpuUsage();
  const n = fn();
  const d = process.cpuUsage(t);
  return [n, (d.user + d.system) / 1000];
};
for (let round = 1; round <= 3; round++) {
  const [n, a] = cpuMs(() => {
    const r = new RespReader();
    let k = 0;
    for (const c of chunks) {
      r.push(c);
      for (let v = r.next(); v; v = r.next()) (commandName(v.value), k++);
    }
    return k;
  });
  const [m, b] = cpuMs(() => {
    const s = new CommandScanner();
    let k = 0;
    for (const c of chunks) s.scan(c, () => k++);
    return k;
  });
  console.log(`round ${round}: value reader ${n} commands in ${a.toFixed(0)} CPU ms; scanner ${m} commands in ${b.toFixed(0)} CPU ms`);
}
