/**
 * Registers every kind of source this program has, once, in the order lists and
 * output follow. Entry points import this module (cli/main.ts, the daemon, the lean
 * archive commands when they read lifeboat.yaml, test/setup-sources.ts); generic
 * code never imports a kind, only src/sources/registry.ts.
 */
import { registerSource } from './registry.js';
import { files } from './files/kind.js';
import { postgres } from './postgres/kind.js';
import { sqlite } from './sqlite/kind.js';
import { redis } from './redis/kind.js';
import { oplog } from './oplog/kind.js';
import { command } from './command/kind.js';
import { bucket } from './bucket/kind.js';

registerSource(files);
registerSource(postgres);
registerSource(sqlite);
registerSource(redis);
registerSource(oplog);
registerSource(command);
registerSource(bucket);
