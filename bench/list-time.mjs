// How long one listing of a local repository's data/ takes (docs/performance.md, "Listing a
// local store reads sizes 64 at a time"):  node bench/list-time.mjs REPO_DIR [prefix]
import { LocalStore } from '../dist/storage/local/local-store.js';

const [dir, prefix = 'data/'] = process.argv.slice(2);
if (!dir) {
  console.error('usage: node bench/list-time.mjs REPO_DIR [prefix]');
  process.exit(2);
}
const store = new LocalStore(dir);
const t = performance.now();
let n = 0;
for await (const _ of store.list(prefix)) n++;
console.log(`listed ${n} objects under ${prefix} in ${((performance.now() - t) / 1000).toFixed(2)} s, ${(process.cpuUsage().user / 1e6).toFixed(2)} user s`);
