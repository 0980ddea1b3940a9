// PLACEHOLDER (helper h-redis-ship replaces this file): lifeboat redis backup | replicate, and restore from ./restore.ts.
import type { Command } from 'commander';
import { registerRestore } from './restore.js';
export function register(program: Command): void {
  const redis = program.command('redis').description('Redis: snapshots over the replication protocol, continuous command shipping, restore to any second');
  registerRestore(redis);
}
