// Per-thread memory of a Lifeboat run (issue 19): preload it in every thread, then print.
//   SAMPLER_DIR=/tmp/tm NODE_OPTIONS="--require $PWD/bench/thread-memory.cjs" node bin/lifeboat.js backup ...
//   node bench/thread-memory.cjs /tmp/tm
// Each thread samples process.memoryUsage() and v8.getHeapSpaceStatistics() every 10 ms
// and keeps its peaks (the main thread also the process's RSS and the figures at its peak).
const fs = require('node:fs');
const v8 = require('node:v8');
const { threadId, isMainThread } = require('node:worker_threads');
const MB = (x) => (x / 1048576).toFixed(1);

if (require.main === module) {
  const dir = process.argv[2];
  for (const f of fs.readdirSync(dir)) {
    const p = JSON.parse(fs.readFileSync(`${dir}/${f}`, 'utf8'));
    const at = p.atRssPeak ? ` rss ${MB(p.rss)} at ${p.atRssPeak.t}s (heap ${MB(p.atRssPeak.heapTotal)}, ab ${MB(p.atRssPeak.arrayBuffers)})` : '';
    console.log(`${f} ${p.main ? 'main  ' : 'worker'} heap ${MB(p.heapTotal)} committed / ${MB(p.heapUsed)} used, new ${MB(p.newSpace)}, old ${MB(p.oldSpace)}, external ${MB(p.external)}, ArrayBuffers ${MB(p.arrayBuffers)}${at}`);
  }
} else {
  const dir = process.env.SAMPLER_DIR || '/tmp/thread-memory';
  fs.mkdirSync(dir, { recursive: true });
  const peak = { main: isMainThread, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0, rss: 0, newSpace: 0, oldSpace: 0, atRssPeak: null };
  const sample = () => {
    const m = process.memoryUsage();
    for (const k of ['heapTotal', 'heapUsed', 'external', 'arrayBuffers']) peak[k] = Math.max(peak[k], m[k]);
    for (const s of v8.getHeapSpaceStatistics()) {
      if (s.space_name === 'new_space') peak.newSpace = Math.max(peak.newSpace, s.space_size);
      if (s.space_name === 'old_space') peak.oldSpace = Math.max(peak.oldSpace, s.space_size);
    }
    if (isMainThread && m.rss > peak.rss) {
      peak.rss = m.rss;
      peak.atRssPeak = { t: process.uptime().toFixed(2), ...m };
    }
  };
  const write = () => {
    try {
      fs.writeFileSync(`${dir}/${process.pid}-${threadId}.json`, JSON.stringify(peak));
    } catch {
      // best effort
    }
  };
  setInterval(sample, 10).unref();
  setInterval(write, 200).unref();
  process.on('exit', () => {
    sample();
    write();
  });
}
