// The CPU a CLI process costs for the commands the test suite and PostgreSQL run most
// (docs/performance.md, "Where the test suite's time goes"), two builds alternating:
//
//   node bench/startup-cpu.mjs A/bin/lifeboat.js B/bin/lifeboat.js [runs=10]
//
// Each round runs every command once with A then once with B (B then A on odd rounds:
// ABBA), each under /usr/bin/time; prints the medians of wall, user+system CPU and peak
// RSS per command and build, and the load average before and after. Repositories use the
// tests' cheap KDF (LIFEBOAT_TEST_KDF=fast) and LIFEBOAT_PASSWORD, as test/helpers.ts runs
// the CLI. Both builds must read the same repository format.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const [binA, binB, runsArg] = process.argv.slice(2);
if (!binA || !binB) {
  console.error('usage: node bench/startup-cpu.mjs A/bin/lifeboat.js B/bin/lifeboat.js [runs]');
  process.exit(2);
}
const runs = Number(runsArg ?? 10);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'lb-startup-'));
const env = { ...process.env, LIFEBOAT_PASSWORD: 'test-password', LIFEBOAT_TEST_KDF: 'fast' };
const timeOut = path.join(tmp, 'time');

/** Runs one CLI call under /usr/bin/time; exits on an unexpected status. */
function run(bin, args, expect = 0) {
  const r = spawnSync('/usr/bin/time', ['-o', timeOut, '-f', '%e %U %S %M', process.execPath, bin, ...args], { env, encoding: 'utf8' });
  if (r.status !== expect) {
    console.error(`${bin} ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
    process.exit(1);
  }
  const [wall, user, sys, rss] = readFileSync(timeOut, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
  return { wall, cpu: user + sys, rss };
}

// Fixtures: a repository with one snapshot of a tiny directory and one archived WAL segment.
const repo = path.join(tmp, 'repo');
const data = path.join(tmp, 'data');
mkdirSync(data);
for (let i = 0; i < 5; i++) writeFileSync(path.join(data, `f${i}.txt`), `file ${i}\n`.repeat(100));
const seg = Buffer.alloc(16 * 1024 * 1024);
seg.writeUInt16LE(0xd110, 0);
seg.writeUInt16LE(0x0002, 2);
seg.writeUInt32LE(1, 4);
seg.writeBigUInt64LE(3n * 16n * 1024n * 1024n, 8);
seg.writeBigUInt64LE(7300000000000000001n, 24);
seg.writeUInt32LE(16 * 1024 * 1024, 32);
seg.writeUInt32LE(8192, 36);
const segName = '000000010000000000000003';
writeFileSync(path.join(tmp, segName), seg);
run(binB, ['init', '--repo', repo]);
run(binB, ['backup', data, '--repo', repo]);
run(binB, ['pg', 'archive-push', '--name', 'm', '--repo', repo, path.join(tmp, segName)]);

let n = 0;
const commands = {
  '--version': () => ['--version'],
  init: () => ['init', '--repo', path.join(tmp, `init-${n++}`)],
  'snapshots --json': () => ['snapshots', '--json', '--repo', repo],
  'backup (5 small files)': () => ['backup', data, '--repo', repo],
  'pg archive-get': () => ['pg', 'archive-get', '--name', 'm', '--repo', repo, segName, path.join(tmp, 'out')],
};
const results = new Map();
const load0 = os.loadavg()[0];
for (let round = 0; round < runs; round++) {
  for (const [name, args] of Object.entries(commands)) {
    for (const [label, bin] of round % 2 === 0 ? [['A', binA], ['B', binB]] : [['B', binB], ['A', binA]]) {
      const key = `${name}\t${label}`;
      if (!results.has(key)) results.set(key, []);
      results.get(key).push(run(bin, args()));
    }
  }
}
const load1 = os.loadavg()[0];
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
console.log(`A = ${binA}\nB = ${binB}\n${runs} runs each, ABBA; load average ${load0.toFixed(2)} before, ${load1.toFixed(2)} after`);
console.log('command\tbuild\twall s\tCPU s (user+sys)\tpeak RSS MB\tCPU min-max');
for (const [key, rs] of results) {
  const cpu = rs.map((r) => r.cpu);
  console.log(`${key}\t${median(rs.map((r) => r.wall)).toFixed(3)}\t${median(cpu).toFixed(3)}\t${(median(rs.map((r) => r.rss)) / 1024).toFixed(0)}\t${Math.min(...cpu).toFixed(2)}-${Math.max(...cpu).toFixed(2)}`);
}
rmSync(tmp, { recursive: true, force: true });
