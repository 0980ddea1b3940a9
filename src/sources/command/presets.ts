/**
 * Presets: the dump and load commands of tools whose stdout is a backup and whose
 * stdin restores it, filled from a few options. Each is documented in docs/command.md
 * with exactly the argv built here (test/unit/command-presets.test.ts pins them).
 * A user's own arguments go before the database operand, where every one of these
 * tools reads options.
 *
 * Only `mariadb` is tested against a real server here; MongoDB, Neo4j and etcd cannot
 * be installed on the machines Lifeboat is built on, so their argv is checked, not run.
 */
import { LifeboatError } from '../../errors.js';

export const PRESETS = ['mariadb', 'neo4j', 'mongodb', 'etcd'] as const;
export type Preset = (typeof PRESETS)[number];

export interface PresetInput {
  database?: string | undefined;
  /** Added to the dump command, before its database operand. */
  dumpArgs?: readonly string[] | undefined;
  /** Added to the load command, before its database operand. */
  loadArgs?: readonly string[] | undefined;
}

export interface Commands {
  dump: string[];
  load: string[];
}

/**
 * etcd writes snapshots only to a file (`etcdctl snapshot save FILE`, whose output must
 * be seekable: it checks the file's hash) and restores only from one. These fixed
 * scripts put the file in a private mktemp directory, stream it, and remove it on exit;
 * the user's arguments reach etcdctl/etcdutl as "$@", never as shell text. The cost is
 * a copy of the snapshot on local disk while it runs.
 */
export const ETCD_DUMP_SCRIPT = [
  'set -eu',
  'd=$(mktemp -d)',
  'trap \'rm -rf "$d"\' EXIT',
  "trap 'exit 143' HUP INT TERM",
  'etcdctl "$@" snapshot save "$d/snapshot.db" >&2',
  'cat "$d/snapshot.db"',
].join('\n');

export const ETCD_LOAD_SCRIPT = [
  'set -eu',
  'd=$(mktemp -d)',
  'trap \'rm -rf "$d"\' EXIT',
  "trap 'exit 143' HUP INT TERM",
  'cat > "$d/snapshot.db"',
  'etcdutl snapshot restore "$d/snapshot.db" "$@" >&2',
].join('\n');

function operand(preset: Preset, database: string): string {
  // A name starting with "-" would be read as an option by the tool.
  if (database.startsWith('-') || database.includes('\0')) {
    throw new LifeboatError('USAGE', `"${database}" cannot be a ${preset} database name`, { hint: 'a database name must not start with "-"' });
  }
  return database;
}

/** The preset's dump and load argv. USAGE for an unknown preset or an option it does not take. */
export function presetCommands(name: string, input: PresetInput = {}): Commands {
  const dumpArgs = [...(input.dumpArgs ?? [])];
  const loadArgs = [...(input.loadArgs ?? [])];
  const db = input.database;
  switch (name as Preset) {
    case 'mariadb': {
      // --single-transaction: one consistent InnoDB snapshot without locking the tables.
      // --skip-dump-date: the closing "Dump completed on" line would make an unchanged
      // dump differ in its last chunk (up to 8 MiB stored again for nothing).
      const base = ['--single-transaction', '--routines', '--events', '--skip-dump-date'];
      if (db === undefined) return { dump: ['mariadb-dump', ...base, ...dumpArgs, '--all-databases'], load: ['mariadb', ...loadArgs] };
      // One database as an operand (not --databases): the dump has no CREATE DATABASE or
      // USE, so it loads into whichever database the load command names.
      return { dump: ['mariadb-dump', ...base, ...dumpArgs, operand('mariadb', db)], load: ['mariadb', ...loadArgs, db] };
    }
    case 'neo4j': {
      const d = operand('neo4j', db ?? 'neo4j');
      return {
        dump: ['neo4j-admin', 'database', 'dump', ...dumpArgs, '--to-stdout', d],
        load: ['neo4j-admin', 'database', 'load', ...loadArgs, '--from-stdin', '--overwrite-destination=true', d],
      };
    }
    case 'mongodb': {
      const d = db === undefined ? undefined : operand('mongodb', db);
      return {
        // --archive without a file name writes to stdout; never --gzip (it defeats deduplication).
        dump: ['mongodump', '--archive', ...dumpArgs, ...(d ? [`--db=${d}`] : [])],
        load: ['mongorestore', '--archive', '--drop', ...loadArgs, ...(d ? [`--nsInclude=${d}.*`] : [])],
      };
    }
    case 'etcd':
      if (db !== undefined) throw new LifeboatError('USAGE', 'the etcd preset takes no database', { hint: 'etcd has one keyspace; give endpoints and certificates as dump arguments' });
      return {
        dump: ['sh', '-c', ETCD_DUMP_SCRIPT, 'lifeboat-etcd-dump', ...dumpArgs],
        load: ['sh', '-c', ETCD_LOAD_SCRIPT, 'lifeboat-etcd-load', ...loadArgs],
      };
    default:
      throw new LifeboatError('USAGE', `unknown preset "${name}"`, { hint: `presets: ${PRESETS.join(', ')}; or give the dump command's argv after --` });
  }
}
