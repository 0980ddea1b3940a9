/**
 * lifeboat redis history NAME --around T — the transactions the replicator shipped near
 * a moment, with their numbers, the time each was seen, the commands and the keys they
 * touched (never a value), so an operator can find the accident and restore to just
 * before it with `redis restore --before-txn N`.
 */
import type { Command } from 'commander';
import { withRepo, type GlobalOptions } from '../../../cli/context.js';
import { printJson } from '../../../cli/output/render.js';
import { historyCommand, parseHistoryFlags, type HistoryFlags } from '../../../cli/commands/options.js';
import { transactionsAround, type DescribedTxn, type TxnCommand } from '../transactions.js';

const TIME_SOURCE = 'replicator: when it had received all of each transaction from the server, up to one read after the server ran it';

export function registerHistory(redis: Command): void {
  historyCommand(redis, 'the transactions near a moment: their numbers, times, commands and the keys they touched (no values)')
    .action(async (name: string, f: HistoryFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const opts = parseHistoryFlags(f, 'each transaction listed is read back from the stored command stream');
      const { around } = opts;
      await withRepo(g, async (repo) => {
        const { generation, txns } = await transactionsAround(repo, name, opts);
        if (g.json) {
          return printJson({ name, generation: generation.generation, around: around.toISOString(), time_source: TIME_SOURCE, transactions: txns.map(txnJson) });
        }
        if (txns.length === 0) {
          console.log(`no transactions stored in generation ${generation.generation} of ${name}`);
          return;
        }
        console.log(`generation ${generation.generation} of ${name}: ${txns.length} transactions nearest ${around.toISOString()}`);
        console.log('(times are when the replicator had received each transaction: up to one read after the server ran it; values are never shown)');
        console.log(`${'txn'.padStart(8)}  ${'seen at'.padEnd(24)}  ${'db'.padStart(3)}  commands and keys`);
        for (const t of txns) {
          const more = t.commandCount > t.commands.length ? `, +${t.commandCount - t.commands.length} more commands` : '';
          const block = t.block ? 'MULTI: ' : '';
          console.log(`${String(t.seq).padStart(8)}  ${new Date(t.time).toISOString().padEnd(24)}  ${(t.db === null ? '?' : String(t.db)).padStart(3)}  ${block}${t.commands.map(commandText).join('; ')}${more}`);
        }
        console.log(`\nundo one and everything after it: lifeboat redis restore ${name} --before-txn N --generation ${generation.generation} -o NEW_DIR`);
      });
    });
}

function commandText(c: TxnCommand): string {
  if (c.keyCount === null) return c.name;
  const more = c.keyCount > c.keys.length ? ` (+${c.keyCount - c.keys.length} more keys)` : '';
  return c.keys.length ? `${c.name} ${c.keys.join(' ')}${more}` : c.name;
}

function txnJson(t: DescribedTxn) {
  return {
    seq: t.seq,
    generation: t.generation,
    time: new Date(t.time).toISOString(),
    offset: t.end,
    before_offset: t.before,
    db: t.db,
    block: t.block,
    command_count: t.commandCount,
    commands: t.commands.map((c) => ({ name: c.name, keys: c.keys, key_count: c.keyCount })),
  };
}
