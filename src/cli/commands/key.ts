/**
 * lifeboat key add | list | remove | passwd | rotate: manage the key slots that open a
 * repository, and (format version 2) its key epochs. Only a full key manages keys: an
 * append-only key can neither create, upgrade nor remove one (docs/security.md).
 * Format 2 slots are protected by a password, a wrap command (envelope encryption
 * through a KMS, age, gpg) or a PKCS#11 token key; docs/keys.md has recipes.
 */
import type { Command } from 'commander';
import { closeSync, constants as C, fsyncSync, openSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { LifeboatError, errno } from '../../errors.js';
import { createKeySlot, listKeySlots } from '../../repo/keys.js';
import { addSlot, assertFull, epochInfo, generatePassword, passwordWrapper, readSlots, removeSlot as removeSlotV2, roleOfSlot, rotate, type SlotRole, type SlotType, type SlotWrapper } from '../../repo/keyring.js';
import { createFileAt, unlinkAt } from '../../util/safe-fs.js';
import { commandWrapper, parseCommand } from '../../repo/key-command.js';
import { acquireLock } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import { cliWarn, getNewPassword, pkcs11Options, withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';

interface SlotListing {
  id: string;
  /** What protects the slot; version 1 slots are all passwords. */
  type: SlotType | 'unknown';
  role: SlotRole | 'removed' | 'damaged';
  created: string;
  hostname: string;
  username: string;
  current: boolean;
}

async function listSlots(repo: Repository): Promise<SlotListing[]> {
  if (!repo.keyring) {
    return (await listKeySlots(repo.store)).map((s) => ({ id: s.id, type: 'password' as const, role: s.appendOnly ? 'append' : 'full', created: s.created, hostname: s.hostname, username: s.username, current: s.id === repo.slotId }));
  }
  const k = repo.keyring;
  const out: SlotListing[] = [];
  for (const s of await readSlots(repo.store)) {
    const slot = s.slot;
    const type: SlotListing['type'] = !slot ? 'unknown' : slot.version === 1 ? 'password' : (['password', 'command', 'pkcs11'] as const).find((t) => t === slot.type) ?? 'unknown';
    const base = { id: s.id, type, current: s.id === repo.slotId, created: slot?.created ?? '', hostname: slot?.hostname ?? '', username: slot?.username ?? '' };
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

async function createSlot(repo: Repository, how: string | SlotWrapper, role: SlotRole): Promise<string> {
  assertManages(repo, 'adding a key');
  if (!repo.keyring) {
    if (typeof how !== 'string') {
      throw new LifeboatError('UNSUPPORTED_FORMAT', `${how.type} key slots need a repository of format version 2`, { hint: 'upgrade it with `lifeboat migrate`' });
    }
    return createKeySlot(repo.store, how, repo.key, { appendOnly: role === 'append' });
  }
  const { id, keyring } = await addSlot(repo.store, repo.keyring, how, role, cliWarn);
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

/**
 * Writes a generated password to `file`, which must not exist: created exclusively
 * (never through a symlink, never over a file), mode 0600, synced with its directory
 * before the slot that needs it is added. `settle(false)` removes it again (adding the
 * slot failed); either way settle closes the directory.
 */
function writeNewPasswordFile(file: string, password: string): (kept: boolean) => void {
  let dirFd: number;
  try {
    dirFd = openSync(dirname(file), C.O_RDONLY | C.O_DIRECTORY);
  } catch (err) {
    throw new LifeboatError('USAGE', `cannot create ${file}: ${errno(err) ?? String(err)}`, { hint: 'give a path in an existing directory you can write' });
  }
  const name = basename(file);
  try {
    let fd: number;
    try {
      fd = createFileAt(dirFd, name, 0o600);
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new LifeboatError('USAGE', code === 'EEXIST' ? `${file} already exists` : `cannot create ${file}: ${errno(err) ?? String(err)}`, {
        hint: code === 'EEXIST' ? 'give the name of a new file: an existing one (or a symlink) is never overwritten' : 'give a path in an existing directory you can write',
      });
    }
    try {
      writeSync(fd, `${password}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    fsyncSync(dirFd);
  } catch (err) {
    closeSync(dirFd);
    throw err;
  }
  return (kept) => {
    try {
      if (!kept) unlinkAt(dirFd, name);
    } finally {
      closeSync(dirFd);
    }
  };
}

export function register(program: Command): void {
  const key = program.command('key').description('manage key slots (passwords) and key epochs');

  key
    .command('list')
    .description('list key slots')
    .action(async (_f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const slots = await listSlots(repo);
        if (g.json) return printJson(slots.map((s) => ({ ...s, appendOnly: s.role === 'append' || s.role === 'write' })));
        for (const s of slots) {
          console.log(`${s.current ? '*' : ' '} ${s.id.slice(0, 8)}  ${s.type.padEnd(8)}  ${s.username}@${s.hostname}  ${s.created}${s.role === 'full' ? '' : `  ${s.role === 'append' ? 'append-only' : s.role === 'write' ? 'write-only' : s.role}`}`);
        }
      });
    });

  key
    .command('epochs')
    .description('list key epochs and the keyring generation (format 2)')
    .action(async (_f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        if (!repo.keyring) {
          throw new LifeboatError('UNSUPPORTED_FORMAT', 'key epochs exist in repositories of format version 2 only', { hint: 'upgrade it with `lifeboat migrate`' });
        }
        const epochs = epochInfo(repo.keyring).map((e) => ({ ...e, id: e.keyId.toString(16).padStart(8, '0'), ageDays: Math.floor((Date.now() - Date.parse(e.created)) / 86_400_000) }));
        if (g.json) return printJson({ generation: repo.keyring.generation, epochs });
        for (const e of epochs) console.log(`${e.current ? '*' : ' '} epoch ${e.id}  since ${e.created} (${e.ageDays} days)`);
        console.log(`keyring generation ${repo.keyring.generation}`);
      });
    });

  key
    .command('add')
    .description('add a key slot: a password, a wrap command or a PKCS#11 key (only with a full key)')
    .option('--new-password-file <file>', 'read the new password from this file')
    .option('--wrap-command <cmd>', 'protect the new slot with this program: it gets the slot\'s key on stdin and prints it wrapped (words, or a JSON array; no shell)')
    .option('--unwrap-command <cmd>', 'with --wrap-command: check at once that this program unwraps what was wrapped')
    .option('--pkcs11', 'protect the new slot with the PKCS#11 key the global --pkcs11-* options name')
    .option('--generate-password-file <file>', 'make a random password, write it to this new file (0600) and protect the slot with it; it opens without the slow key derivation a chosen password needs (for archive_command; format 2)')
    .option('--append-only', 'clients opening with it may add backups but never delete or overwrite (for backup hosts)')
    .option('--write-only', 'clients opening with it may add backups but read nothing back, not even their own (format 2; docs/keys.md)')
    .action(async (f: { newPasswordFile?: string; generatePasswordFile?: string; wrapCommand?: string; unwrapCommand?: string; pkcs11?: boolean; appendOnly?: boolean; writeOnly?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (f.writeOnly && (f.appendOnly || g.appendOnly)) {
        throw new LifeboatError('USAGE', 'give one of --append-only and --write-only', { hint: 'a write-only slot is also append-only: it never deletes or overwrites' });
      }
      if ([f.newPasswordFile !== undefined, f.generatePasswordFile !== undefined, f.wrapCommand !== undefined, f.pkcs11 === true].filter(Boolean).length > 1) {
        throw new LifeboatError('USAGE', 'give one of --new-password-file, --generate-password-file, --wrap-command and --pkcs11', { hint: 'each key slot is protected by one thing; add several slots for several' });
      }
      if (f.unwrapCommand !== undefined && f.wrapCommand === undefined) {
        throw new LifeboatError('USAGE', '--unwrap-command checks a --wrap-command', { hint: 'add --wrap-command, or drop --unwrap-command' });
      }
      // Parsed before the repository opens: a typo must not cost a KMS round trip.
      const wrapArgv = f.wrapCommand === undefined ? undefined : parseCommand(f.wrapCommand, '--wrap-command');
      const unwrapArgv = f.unwrapCommand === undefined ? undefined : parseCommand(f.unwrapCommand, '--unwrap-command');
      const p11 = f.pkcs11 ? pkcs11Options(g) : undefined;
      if (f.pkcs11 && !p11) {
        throw new LifeboatError('USAGE', 'key add --pkcs11 needs the token: --pkcs11-module, --pkcs11-token, and the PIN', { hint: 'e.g. --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --pkcs11-token NAME --pkcs11-pin-file F (docs/keys.md)' });
      }
      // With --pkcs11 the token options describe the new slot; the repository opens with a password or key command.
      await withRepo(g, async (repo) => {
        // The global --append-only has the same name, and commander may hand the flag to either.
        const appendOnly = (f.appendOnly ?? false) || (g.appendOnly ?? false);
        // Checked before anything runs: a restricted key sends nothing to a KMS or token.
        assertManages(repo, 'adding a key');
        if ((f.writeOnly || f.generatePasswordFile !== undefined) && !repo.keyring) {
          throw new LifeboatError('UNSUPPORTED_FORMAT', `${f.writeOnly ? 'write-only key slots' : 'generated passwords'} need a repository of format version 2`, { hint: 'upgrade it with `lifeboat migrate`' });
        }
        let how: string | SlotWrapper;
        let settle: ((kept: boolean) => void) | undefined;
        if (wrapArgv) how = commandWrapper(wrapArgv, unwrapArgv);
        else if (p11) how = (await import('../../repo/key-pkcs11.js')).pkcs11Wrapper(p11);
        else if (f.generatePasswordFile !== undefined) {
          // Written (and synced) before the slot exists: a slot is never left without its password.
          const password = generatePassword();
          settle = writeNewPasswordFile(f.generatePasswordFile, password);
          how = passwordWrapper(password, { generated: true });
        } else how = await getNewPassword(f.newPasswordFile);
        const role: SlotRole = f.writeOnly ? 'write' : appendOnly ? 'append' : 'full';
        let id: string;
        try {
          id = await createSlot(repo, how, role);
        } catch (err) {
          settle?.(false);
          throw err;
        }
        settle?.(true);
        const type = typeof how === 'string' ? 'password' : how.type;
        const file = f.generatePasswordFile;
        if (g.json) printJson({ id, type, appendOnly: role !== 'full', role, ...(file !== undefined ? { passwordFile: file } : {}) });
        else if (!g.quiet) console.log(`added ${role === 'full' ? '' : role === 'append' ? 'append-only ' : 'write-only '}${type === 'password' ? '' : `${type} `}key ${id.slice(0, 8)}${file !== undefined ? `; its password is in ${file}` : ''}`);
      }, { pkcs11: !f.pkcs11 });
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
        const mine = (await readSlots(repo.store)).find((s) => s.id === repo.slotId)?.slot;
        if (mine?.version === 2 && mine.type !== 'password') {
          throw new LifeboatError('USAGE', `key passwd changes a password; this repository was opened with a ${mine.type} key slot`, {
            hint: 'add the new slot with `key add`, then remove the old one with `key remove` while opened by another slot',
          });
        }
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
          throw new LifeboatError('UNSUPPORTED_FORMAT', 'key rotation needs a repository of format version 2', { hint: 'upgrade it with `lifeboat migrate`' });
        }
        assertFull(repo.keyring, 'rotating keys');
        const lock = await acquireLock(repo.store, 'exclusive', 'key rotate');
        try {
          repo.useKeyring(await rotate(repo.store, repo.keyring, cliWarn));
        } finally {
          await lock.release();
        }
        const cur = epochInfo(repo.keyring).find((e) => e.current);
        if (g.json) printJson({ epoch: cur, generation: repo.keyring.generation, ...(cur ? { keyEpoch: { id: cur.keyId.toString(16).padStart(8, '0'), created: cur.created } } : {}) });
        else if (!g.quiet) console.log(`new key epoch ${cur?.keyId.toString(16).padStart(8, '0')}; run \`lifeboat prune --reseal\` to re-seal data of older epochs`);
      });
    });
}
