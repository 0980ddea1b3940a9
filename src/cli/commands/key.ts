/** lifeboat key add | list | remove | passwd: manage the passwords that open a repository. */
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { createKeySlot, listKeySlots } from '../../repo/keys.js';
import { acquireLock } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import { getNewPassword, withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';

async function removeSlot(repo: Repository, id: string): Promise<void> {
  const lock = await acquireLock(repo.store, 'exclusive', 'key remove');
  try {
    await repo.store.delete(`keys/${id}`);
  } finally {
    await lock.release();
  }
}

export function register(program: Command): void {
  const key = program.command('key').description('manage key slots (passwords)');

  key
    .command('list')
    .description('list key slots')
    .action(async (_f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const slots = await listKeySlots(repo.store);
        if (g.json) return printJson(slots.map((s) => ({ ...s, current: s.id === repo.slotId })));
        for (const s of slots) {
          console.log(`${s.id === repo.slotId ? '*' : ' '} ${s.id.slice(0, 8)}  ${s.username}@${s.hostname}  ${s.created}${s.appendOnly ? '  append-only' : ''}`);
        }
      });
    });

  key
    .command('add')
    .description('add a password')
    .option('--new-password-file <file>', 'read the new password from this file')
    .option('--append-only', 'clients opening with it may add backups but never delete or overwrite (for backup hosts)')
    .action(async (f: { newPasswordFile?: string; appendOnly?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        // The global --append-only has the same name, and commander may hand the flag to either.
        const appendOnly = (f.appendOnly ?? false) || (g.appendOnly ?? false);
        const id = await createKeySlot(repo.store, await getNewPassword(f.newPasswordFile), repo.key, { appendOnly });
        if (g.json) printJson({ id, appendOnly });
        else console.log(`added ${appendOnly ? 'append-only ' : ''}key ${id.slice(0, 8)}`);
      });
    });

  key
    .command('remove')
    .description('remove a key slot (not the one in use)')
    .argument('<id>', 'key id prefix from `key list`')
    .action(async (prefix: string, _f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const matches = (await listKeySlots(repo.store)).filter((s) => s.id.startsWith(prefix));
        if (matches.length !== 1) {
          throw new LifeboatError(matches.length ? 'USAGE' : 'NOT_FOUND', `${matches.length ? 'ambiguous' : 'no'} key ${prefix}`, { hint: '`lifeboat key list` shows the ids' });
        }
        const id = (matches[0] as { id: string }).id;
        if (id === repo.slotId) {
          throw new LifeboatError('USAGE', 'refusing to remove the key slot this password opened', {
            hint: 'open the repository with another password to remove this one, or use `key passwd`',
          });
        }
        await removeSlot(repo, id);
        if (!g.quiet) console.log(`removed key ${id.slice(0, 8)}`);
      });
    });

  key
    .command('passwd')
    .description('change the password in use (adds a new slot, removes the old one)')
    .option('--new-password-file <file>', 'read the new password from this file')
    .action(async (f: { newPasswordFile?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const id = await createKeySlot(repo.store, await getNewPassword(f.newPasswordFile), repo.key);
        await removeSlot(repo, repo.slotId);
        if (!g.quiet) console.log(`password changed (key ${id.slice(0, 8)})`);
      });
    });
}
