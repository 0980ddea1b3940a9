// Where the test suite's CPU goes (docs/performance.md, "Where the test suite's time goes").
//
//   rm -f /tmp/suite-cpu.txt; NODE_OPTIONS="--import $PWD/bench/suite-cpu.mjs" npx vitest run
//   node bench/suite-cpu.mjs /tmp/suite-cpu.txt
//
// Preloaded into every node process of the run, it appends the process's CPU seconds and
// argv to SUITE_CPU_LOG (default /tmp/suite-cpu.txt) when it exits; run directly, it sums
// that log: all processes, the CLI's, and the CLI's by command. A process killed by a
// signal it does not handle writes nothing.
import { appendFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const log = process.env.SUITE_CPU_LOG ?? '/tmp/suite-cpu.txt';

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = readFileSync(process.argv[2] ?? log, 'utf8').trim().split('\n').map((l) => {
    const [cpu, args] = l.split('\t');
    return { cpu: Number(cpu), args: args ?? '' };
  });
  const cli = rows.filter((r) => r.args.includes('bin/lifeboat.js'));
  const sum = (rs) => rs.reduce((s, r) => s + r.cpu, 0).toFixed(0);
  console.log(`${rows.length} node processes, ${sum(rows)} CPU-s; ${cli.length} CLI processes, ${sum(cli)} CPU-s`);
  const by = new Map();
  for (const r of cli) {
    // The command words: what follows the entry point, without options, their values or paths.
    const words = r.args.split(' ').slice(1).filter((w) => /^[a-z][a-z-]*$/.test(w)).slice(0, 2).join(' ');
    const e = by.get(words) ?? { n: 0, cpu: 0 };
    e.n++;
    e.cpu += r.cpu;
    by.set(words, e);
  }
  for (const [k, e] of [...by].sort((a, b) => b[1].cpu - a[1].cpu).slice(0, 25)) console.log(`${e.cpu.toFixed(0).padStart(6)} CPU-s ${String(e.n).padStart(5)}x  ${k}`);
} else {
  process.on('exit', () => {
    const u = process.cpuUsage();
    try {
      appendFileSync(log, `${((u.user + u.system) / 1e6).toFixed(3)}\t${process.argv.slice(1).join(' ').replace(/[\t\n]/g, ' ').slice(0, 300)}\n`);
    } catch {
      // Measurement only: never fail the process measured.
    }
  });
}
