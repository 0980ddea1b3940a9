/**
 * The command kind for the conformance suite: `redis-cli --rdb -` (the RDB a replica
 * would receive, on stdout) of a scratch Debian redis-server on a free port, as a
 * `kind: command` source of lifeboat.yaml. A change adds, rewrites and removes keys of
 * several types. Its fingerprint is every key's type, value digest and expiry, read
 * from the live server, or from a restore's file loaded into a scratch server (a
 * command restore by the daemon writes the dump to a new file). No log: a command
 * source restores to a dump.
 */
import { promises as fs, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { initRepo, runCli, tmpdir } from '../../helpers.js';
import { RedisServer, datasetOf, datasetOfRdb } from '../../helpers/redis-server.js';
import { nextMoment, type KindDriver, type Subject } from '../driver.js';

export const commandDriver: KindDriver = {
  kind: 'command',
  hasLog: false,
  async setup(): Promise<Subject> {
    const dir = tmpdir('lb-conform-command-');
    const repo = path.join(dir, 'repo');
    const pw = path.join(dir, 'password');
    writeFileSync(pw, 'conformance-command\n', { mode: 0o600 });
    // No 5 s wait before a diskless transfer (redis-cli --rdb asks for one).
    const server = await RedisServer.start({ conf: ['repl-diskless-sync-delay 0'] });
    for (let i = 0; i < 50; i++) {
      await server.command(['SET', `s:${i}`, `initial ${i}`]);
      await server.command(['HSET', `h:${i % 5}`, `f${i}`, `v${i}`]);
    }
    const config = path.join(dir, 'lifeboat.yaml');
    writeFileSync(
      config,
      [
        'repositories:',
        '  main:',
        `    stores: [${repo}]`,
        `    password_file: ${pw}`,
        'sources:',
        '  cache-dump:',
        '    kind: command',
        `    dump: [redis-cli, -h, 127.0.0.1, -p, "${server.port}", --rdb, "-"]`,
            '',
      ].join('\n'),
    );
    const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { LIFEBOAT_PASSWORD: undefined, ...env });
    await initRepo(repo, 'conformance-command');
    return {
      config,
      source: 'cache-dump',
      cli,
      target: (label) => path.join(dir, `restored-${label}.rdb`),
      async change(step) {
        await server.command(['SET', `s:${step}`, `rewritten in step ${step}`]);
        await server.command(['DEL', `s:${10 + step}`]);
        await server.command(['HSET', `h:${step % 5}`, `step${step}`, 'added']);
        await server.command(['RPUSH', 'journal', `step ${step}`]);
        await server.command(['ZADD', 'board', step, `player${step}`]);
      },
      fingerprint: () => datasetOf(server),
      restored: (target) => datasetOfRdb(target),
      moment: () => nextMoment(),
      restoresSnapshotIds: true,
      async close() {
        await server.stop();
        await fs.rm(dir, { recursive: true, force: true });
      },
    };
  },
};
