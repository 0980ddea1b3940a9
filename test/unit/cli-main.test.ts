/**
 * The CLI loads only the module of the command it runs (src/cli/main.ts). These tests
 * check that its table names every top-level command its modules register (a missing
 * name would still work, only slower; a wrong one would hide a command), and that the
 * command word is found behind global options and their values.
 */
import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { COMMAND_MODULES, buildProgram, commandWord } from '../../src/cli/main.js';

describe('the CLI command table', () => {
  it('names exactly the top-level commands each module registers', async () => {
    for (const m of COMMAND_MODULES) {
      const p = new Command('lifeboat');
      (await m.load()).register(p);
      expect(p.commands.map((c) => c.name()).sort()).toEqual([...m.names].sort());
    }
  });

  it('lists every command for help, and loads one for a command word', async () => {
    const all = await buildProgram(['--help']);
    expect(all.commands.map((c) => c.name())).toEqual(COMMAND_MODULES.flatMap((m) => m.names));
    const one = await buildProgram(['-r', '/tmp/r', '--json', 'pg', 'backup']);
    expect(one.commands.map((c) => c.name())).toEqual(['pg']);
    expect((await buildProgram(['--version'])).commands).toEqual([]);
    // An unknown word loads them all, so commander can suggest the nearest command.
    expect((await buildProgram(['snapshot'])).commands.length).toBe(COMMAND_MODULES.flatMap((m) => m.names).length);
  });

  it('finds the command word behind global options and their values', async () => {
    const p = await buildProgram(['--version']);
    expect(commandWord(p, ['-r', 'backup', 'snapshots'])).toBe('snapshots');
    expect(commandWord(p, ['--repo=backup', '-q', 'restore', 'latest'])).toBe('restore');
    expect(commandWord(p, ['--compression', 'lz4', '-p', 'pw', 'backup', '/x'])).toBe('backup');
    expect(commandWord(p, ['--pkcs11-token', 'serve', 'key', 'list'])).toBe('key');
    expect(commandWord(p, ['--no-such-flag', 'backup'])).toBeUndefined();
    expect(commandWord(p, ['-r', '/tmp/r'])).toBeUndefined();
  });
});
