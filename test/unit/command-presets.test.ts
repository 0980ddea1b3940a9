/**
 * The `command` kind's presets produce exactly the argv docs/command.md documents
 * (Neo4j, MongoDB and etcd cannot run on these machines, so their command lines are
 * what is tested), a user's arguments go before the database operand, and bad
 * input is refused: an unknown preset, a database where a preset takes none, a
 * database that would read as an option, and lifeboat.yaml mistakes.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { jobCommand } from '../../src/daemon/jobs.js';
import { ETCD_DUMP_SCRIPT, ETCD_LOAD_SCRIPT, presetCommands } from '../../src/sources/command/presets.js';
import { sourceCommands } from '../../src/sources/command/spec.js';
import { ROOT } from '../helpers.js';

describe('command presets', () => {
  it('mariadb: all databases, or one as an operand (no CREATE DATABASE, so it loads into any database)', () => {
    expect(presetCommands('mariadb')).toEqual({
      dump: ['mariadb-dump', '--single-transaction', '--routines', '--events', '--skip-dump-date', '--all-databases'],
      load: ['mariadb'],
    });
    expect(presetCommands('mariadb', { database: 'shop', dumpArgs: ['--host=db1', '--user=backup'], loadArgs: ['--host=db2'] })).toEqual({
      dump: ['mariadb-dump', '--single-transaction', '--routines', '--events', '--skip-dump-date', '--host=db1', '--user=backup', 'shop'],
      load: ['mariadb', '--host=db2', 'shop'],
    });
  });

  it('neo4j: Neo4j 5 neo4j-admin database dump --to-stdout / load --from-stdin, database neo4j unless named', () => {
    expect(presetCommands('neo4j')).toEqual({
      dump: ['neo4j-admin', 'database', 'dump', '--to-stdout', 'neo4j'],
      load: ['neo4j-admin', 'database', 'load', '--from-stdin', '--overwrite-destination=true', 'neo4j'],
    });
    expect(presetCommands('neo4j', { database: 'graph', dumpArgs: ['--verbose'], loadArgs: ['--verbose'] })).toEqual({
      dump: ['neo4j-admin', 'database', 'dump', '--verbose', '--to-stdout', 'graph'],
      load: ['neo4j-admin', 'database', 'load', '--verbose', '--from-stdin', '--overwrite-destination=true', 'graph'],
    });
  });

  it('mongodb: mongodump --archive / mongorestore --archive --drop, one database with --db / --nsInclude', () => {
    expect(presetCommands('mongodb')).toEqual({ dump: ['mongodump', '--archive'], load: ['mongorestore', '--archive', '--drop'] });
    expect(presetCommands('mongodb', { database: 'app', dumpArgs: ['--uri=mongodb://127.0.0.1:27017'], loadArgs: ['--uri=mongodb://127.0.0.1:27018'] })).toEqual({
      dump: ['mongodump', '--archive', '--uri=mongodb://127.0.0.1:27017', '--db=app'],
      load: ['mongorestore', '--archive', '--drop', '--uri=mongodb://127.0.0.1:27018', '--nsInclude=app.*'],
    });
  });

  it('etcd: a fixed sh script around etcdctl snapshot save / etcdutl snapshot restore, the user\'s arguments as "$@"', () => {
    const c = presetCommands('etcd', { dumpArgs: ['--endpoints=https://10.0.0.1:2379'], loadArgs: ['--data-dir=/var/lib/etcd-restored'] });
    expect(c.dump).toEqual(['sh', '-c', ETCD_DUMP_SCRIPT, 'lifeboat-etcd-dump', '--endpoints=https://10.0.0.1:2379']);
    expect(c.load).toEqual(['sh', '-c', ETCD_LOAD_SCRIPT, 'lifeboat-etcd-load', '--data-dir=/var/lib/etcd-restored']);
    expect(ETCD_DUMP_SCRIPT).toContain('etcdctl "$@" snapshot save "$d/snapshot.db" >&2');
    expect(ETCD_LOAD_SCRIPT).toContain('etcdutl snapshot restore "$d/snapshot.db" "$@" >&2');
    // The user's words never become shell text.
    expect(ETCD_DUMP_SCRIPT).not.toContain('10.0.0.1');
  });

  it('docs/command.md shows each preset\'s commands as built here', () => {
    const doc = readFileSync(path.join(ROOT, 'docs', 'command.md'), 'utf8');
    for (const argv of [
      presetCommands('mariadb').dump, presetCommands('mariadb', { database: 'DB' }).dump, presetCommands('mariadb', { database: 'DB' }).load,
      presetCommands('neo4j').dump, presetCommands('neo4j').load,
      presetCommands('mongodb').dump, presetCommands('mongodb').load,
      presetCommands('mongodb', { database: 'DB' }).dump, presetCommands('mongodb', { database: 'DB' }).load,
    ]) {
      expect(doc, argv.join(' ')).toContain(argv.join(' '));
    }
    expect(doc).toContain(ETCD_DUMP_SCRIPT);
    expect(doc).toContain(ETCD_LOAD_SCRIPT);
  });

  it('refuses an unknown preset, a database for etcd, and a database that would read as an option', () => {
    expect(() => presetCommands('oracle')).toThrow(/unknown preset "oracle"/);
    expect(() => presetCommands('etcd', { database: 'x' })).toThrow(/takes no database/);
    expect(() => presetCommands('mariadb', { database: '--all-databases' })).toThrow(/cannot be a mariadb database name/);
  });
});

describe('command sources in lifeboat.yaml', () => {
  const yaml = (...lines: string[]) => ['repositories:', '  main:', '    stores: [/srv/repo]', 'sources:', '  s:', '    kind: command', ...lines, ''].join('\n');

  it('fills a preset from its options, resolves cwd against the file, and keeps env out of the job', () => {
    const c = parseConfig(yaml('    preset: mariadb', '    database: shop', '    dump: [--host=db1]', '    load: [--host=db2]', '    env: { MYSQL_PWD: hunter2 }', '    cwd: work'), '/etc/lifeboat/lifeboat.yaml');
    const s = c.sources.get('s')!;
    const cmds = sourceCommands(s, c.file);
    expect(cmds.dump).toEqual({ argv: ['mariadb-dump', '--single-transaction', '--routines', '--events', '--skip-dump-date', '--host=db1', 'shop'], env: { MYSQL_PWD: 'hunter2' }, cwd: '/etc/lifeboat/work' });
    expect(cmds.load?.argv).toEqual(['mariadb', '--host=db2', 'shop']);
    expect(cmds.preset).toBe('mariadb');
    expect(jobCommand(c, { kind: 'backup', source: 's', trigger: 'test' }).join(' ')).not.toContain('hunter2');
  });

  it('a plain dump argv, no load', () => {
    const c = parseConfig(yaml('    dump: [pg_dumpall, --host=127.0.0.1]'), '/etc/lifeboat.yaml');
    const cmds = sourceCommands(c.sources.get('s')!, c.file);
    expect(cmds.dump.argv).toEqual(['pg_dumpall', '--host=127.0.0.1']);
    expect(cmds.load).toBeUndefined();
  });

  it('refuses a source without dump or preset, an unknown preset, a database without a preset, an empty argv, a bad env name', () => {
    expect(() => parseConfig(yaml('    cwd: /tmp'), '/l.yaml')).toThrow(/needs "dump" \(argv\) or "preset"/);
    expect(() => parseConfig(yaml('    preset: oracle'), '/l.yaml')).toThrow(/preset.*must be one of mariadb, neo4j, mongodb, etcd/);
    expect(() => parseConfig(yaml('    dump: [mysqldump]', '    database: x'), '/l.yaml')).toThrow(/"database" goes with a preset/);
    expect(() => parseConfig(yaml('    dump: []'), '/l.yaml')).toThrow(/dump.*must name a program/);
    expect(() => parseConfig(yaml('    dump: [x]', '    env: { "A-B": "1" }'), '/l.yaml')).toThrow(/"env" must be/);
    expect(() => parseConfig(yaml('    preset: etcd', '    database: x'), '/l.yaml')).toThrow(/takes no database/);
  });
});
