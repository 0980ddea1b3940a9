// PLACEHOLDER (helper h-redis-restore replaces this file): lifeboat redis restore (and verify).
import type { Command } from 'commander';
export function registerRestore(_redis: Command): void {}
