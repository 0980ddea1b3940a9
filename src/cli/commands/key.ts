/**
 * lifeboat key add | list | remove | passwd | rotate: manage the key slots that open a
 * repository, and (format version 2) its key epochs. Only a full key manages keys: an
 * append-only key can neither create, upgrade nor remove one (docs/security.md).
 */
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { createKeySlot, listKeySlots } from '../../repo/keys.js';
import { addSlot, assertFull, epochInfo, readSlots, removeSlot as removeSlotV2, roleOfSlot, rotate, type SlotRole } from '../../repo/keyring.js';
import { acquireLock } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import { cliWarn, getNewPassword, withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';

interface SlotListing {
  id: string;
  role: SlotRole | 'removed' | 'damaged';
  created: string;
  hostname: string;
  username: string;
  current: boolean;
}

async function listSlots(repo: Repository): Promise<SlotListing[]> {
  if (!repo.keyring) {
    return (await listKeySlots(repo.store)).map((s) => ({ id: s.id, role: s.appendOnly ? 'append' : 'full', created: s.created, hostname: s.hostname, username: s.username, current: s.id === repo.slotId }));
  }
  const k = repo.keyring;
  const out: SlotListing[] = [];
  for (const s of await readSlots(repo.store)) {
    const slot = s.slot;
    const base = { id: s.id, current: s.id === repo.slotId, created: slot?.created ?? '', hostname: slot?.hostname ?? '', username: slot?.username ?? '' };
    if (!slot || s.problem) out.push({ ...base, role: 'damaged' });
    // A full key knows every slot's role from the keyring; a restricted one only its own.
    else if (k.role === 'full') out.push({ ...base, role: roleOfSlot(k, s.id) ?? 'removed' });
    else out.push({ ...base, role: s.id === repo.slotId ? k.role : slot.version === 2 ? slot.role : 'full' });
  }
  return out.sort((a, b) => a.created.localeCompare(b.created));
}

function assertManages(repo: Repository, what: string): void {
  if (repo.keyring) assertFull(repo.keyring, what);
  else if (repo.role !== 'full') {
    throw new LifeboatError('PERMISSION', `${what} needs a full key; this key slot is append-only`, {
      hint: 'open the repository with an administrator password; restricted keys can never create, change or remove keys',
    });
  }
}

async function createSlot(repo: Repository, password: string, role: SlotRole): Promise<string> {
  assertManages(repo, 'adding a key');
  if (!repo.keyring) return createKeySlot(repo.store, password, repo.key, { appendOnly: role === 'append' });
  const { id, keyring } = await addSlot(repo.store, repo.keyring, password, role, cliWarn);
  repo.useKeyring(keyring);
  return id;
}

async function removeSlot(repo: Repository, id: string): Promise<void> {
  assertManages(repo, 'removing a key');
  const lock = await acquireLock(repo.store, 'exclusive', 'key remove');
  try {
    if (repo.keyring) repo.useKeyring(await removeSlotV2(repo.store, repo.keyring, id, cliWarn));
    else await repo.store.delete(`keys/${id}`);
  } finally {
    await lock.release();
  }
}

export function register(program: Command): void {
  const key = program.command('key').description('manage key slots (passwords) and key epochs');

  key
    .command('list')
    .description('list key slots (and, for format 2, key epochs)')
    .action(async (_f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const slots = await listSlots(repo);
        const epochs = repo.keyring ? epochInfo(repo.keyring) : [];
        if (g.json) {
          return printJson(repo.keyring ? { slots: slots.map((s) => ({ ...s, appendOnly: s.role === 'append' })), epochs, generation: repo.keyring.generation } : slots.map((s) => ({ ...s, appendOnly: s.role === 'append' })));
        }
        for (const s of slots) {
          console.log(`${s.current ? '*' : ' '} ${s.id.slice(0, 8)}  ${s.username}@${s.hostname}  ${s.created}${s.role === 'full' ? '' : `  ${s.role === 'append' ? 'append-only' : s.role}`}`);
        }
        for (const e of epochs) console.log(`  epoch ${e.keyId.toString(16).padStart(8, '0')}  since ${e.created}${e.current ? '  current' : ''}`);
      });
    });

  key
    .command('add')
    .description('add a password (only with a full key)')
    .option('--new-password-file <file>', 'read the new password from this file')
    .option('--append-only', 'clients opening with it may add backups but never delete or overwrite (for backup hosts)')
    .action(async (f: { newPasswordFile?: string; appendOnly?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        // The global --append-only has the same name, and commander may hand the flag to either.
        const appendOnly = (f.appendOnly ?? false) || (g.appendOnly ?? false);
        assertManages(repo, 'adding a key');
        const id = await createSlot(repo, await getNewPassword(f.newPasswordFile), appendOnly ? 'append' : 'full');
        if (g.json) printJson({ id, appendOnly });
        else console.log(`added ${appendOnly ? 'append-only ' : ''}key ${id.slice(0, 8)}`);
      });
    });

  key
    .command('remove')
    .description('remove a key slot (not the one in use); format 2 also starts a new key epoch')
    .argument('<id>', 'key id prefix from `key list`')
    .action(async (prefix: string, _f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        assertManages(repo, 'removing a key');
        const matches = (await listSlots(repo)).filter((s) => s.id.startsWith(prefix));
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
        if (!g.quiet) console.log(`removed key ${id.slice(0, 8)}${repo.keyring ? '; new data is sealed under a new key epoch (run `lifeboat prune --reseal` to re-seal the old)' : ''}`);
      });
    });

  key
    .command('passwd')
    .description('change the password in use (adds a new slot, removes the old one; only with a full key)')
    .option('--new-password-file <file>', 'read the new password from this file')
    .action(async (f: { newPasswordFile?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        // Checked before anything is written: a restricted key must not leave a new slot behind.
        assertManages(repo, 'changing a password');
        const id = await createSlot(repo, await getNewPassword(f.newPasswordFile), 'full');
        await removeSlot(repo, repo.slotId);
        if (!g.quiet) console.log(`password changed (key ${id.slice(0, 8)})`);
      });
    });

  key
    .command('rotate')
    .description('start a new key epoch: new data is sealed under it at once (format 2, full key)')
    .action(async (_f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        if (!repo.keyring) {
          throw new LifeboatError('UNSUPPORTED_FORMAT', 'key rotation needs a repository of format version 2', { hint: 'create a format 2 repository with `lifeboat init` and move the snapshots with `lifeboat copy`' });
        }
        assertFull(repo.keyring, 'rotating keys');
        const lock = await acquireLock(repo.store, 'exclusive', 'key rotate');
        try {
          repo.useKeyring(await rotate(repo.store, repo.keyring, cliWarn));
        } finally {
          await lock.release();
        }
        const cur = epochInfo(repo.keyring).find((e) => e.current);
        if (g.json) printJson({ epoch: cur, generation: repo.keyring.generation });
        else if (!g.quiet) console.log(`new key epoch ${cur?.keyId.toString(16).padStart(8, '0')}; run \`lifeboat prune --reseal\` to re-seal data of older epochs`);
      });
    });
}
