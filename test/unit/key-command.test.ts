/**
 * The key command runner: argv parsing (words or a JSON array, never a shell), and
 * the bounds that keep a misbehaving KMS program from hanging or flooding lifeboat.
 */
import { describe, expect, it } from 'vitest';
import { MAX_KEY_COMMAND_OUTPUT, parseCommand, runKeyCommand } from '../../src/repo/key-command.js';
import { isLifeboatError } from '../../src/errors.js';

describe('parseCommand', () => {
  it('splits words on whitespace, or reads a JSON array; no shell syntax is interpreted', () => {
    expect(parseCommand('  age -d\t-i /k.txt ', 'x')).toEqual(['age', '-d', '-i', '/k.txt']);
    expect(parseCommand('["sh", "-c", "base64 -d | kms decrypt"]', 'x')).toEqual(['sh', '-c', 'base64 -d | kms decrypt']);
    expect(parseCommand(['a b', 'c'], 'x')).toEqual(['a b', 'c']);
    expect(parseCommand('echo $HOME "quoted words"', 'x')).toEqual(['echo', '$HOME', '"quoted', 'words"']);
  });

  it('refuses empty commands and arrays of anything but strings', () => {
    for (const bad of ['', '   ', '[]', '[1, 2]', '[""]', '["a",']) {
      let err: unknown;
      try {
        parseCommand(bad, '--key-command');
      } catch (e) {
        err = e;
      }
      expect(isLifeboatError(err, 'USAGE'), bad).toBe(true);
    }
  });
});

describe('runKeyCommand', () => {
  it('feeds stdin and returns stdout exactly, binary included', async () => {
    const input = Buffer.from([0, 1, 2, 255, 10, 13]);
    const r = await runKeyCommand(['cat'], input, 'test');
    expect(r.ok).toBe(true);
    expect(r.stdout.equals(input)).toBe(true);
  });

  it('reports a refusal with its exit status and stderr on one line, without stdout', async () => {
    const r = await runKeyCommand(['sh', '-c', 'cat; echo "bad key" >&2; echo "second line" >&2; exit 3'], Buffer.from('SECRET'), 'test');
    expect(r.ok).toBe(false);
    expect(r.failure).toBe('"sh" exited with 3: bad key second line');
    expect(r.failure).not.toContain('SECRET');
  });

  it('stops a program that prints more than the bound', async () => {
    await expect(runKeyCommand(['head', '-c', String(MAX_KEY_COMMAND_OUTPUT + 1), '/dev/zero'], Buffer.alloc(0), 'test')).rejects.toThrow(/printed more than 64 KiB/);
  });

  it('stops a program that does not finish within the timeout', async () => {
    await expect(runKeyCommand(['sleep', '30'], Buffer.alloc(0), 'key command', 300)).rejects.toThrow(/"sleep" did not finish within/);
  });

  it('says when the program does not exist', async () => {
    await expect(runKeyCommand(['/nonexistent/unwrap'], Buffer.alloc(0), 'key command')).rejects.toThrow(/cannot be run: no such program/);
  });
});
