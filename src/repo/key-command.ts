/**
 * Command key slots: envelope encryption through any program (a KMS CLI, age, gpg,
 * Vault). A slot's small secret goes to the wrap program on stdin and its stdout is
 * stored; to open, each command slot's stored bytes go to the unwrap program on stdin
 * and its stdout is the secret, which openKeyring checks against the slot's public key.
 *
 * The unwrap program always comes from the local configuration (flag, environment,
 * lifeboat.yaml), never from the repository: whoever controls the storage must not be
 * able to choose a program that runs here. Programs run without a shell, as argv, and
 * secrets pass only through pipes, never through argv or messages.
 */
import { spawn } from 'node:child_process';
import { LifeboatError } from '../errors.js';
import type { SlotOpener, SlotWrapper } from './keyring.js';

/**
 * 64 KiB: a wrapped 200-byte secret is a few hundred bytes in every KMS and tool we
 * know (gpg with several recipients stays far below); anything larger is not a key.
 */
export const MAX_KEY_COMMAND_OUTPUT = 64 * 1024;

/**
 * 60 s: a KMS call over a slow link, or a hardware token waiting for a touch, takes
 * seconds; a program still running after a minute is waiting for input it will not get.
 */
export const KEY_COMMAND_TIMEOUT_MS = 60_000;

/** Only this much of the program's stderr is kept for the error message. */
const MAX_STDERR = 4096;

/**
 * A command as argv: a JSON array of strings when the text starts with `[` (for
 * arguments with spaces, or `sh -c` pipelines the user chose), otherwise words split
 * on whitespace. There is no shell: no quoting, globbing or variables.
 */
export function parseCommand(text: string | readonly string[], what: string): string[] {
  let argv: unknown;
  if (Array.isArray(text)) argv = text;
  else if (typeof text === 'string' && text.trimStart().startsWith('[')) {
    try {
      argv = JSON.parse(text);
    } catch (err) {
      throw new LifeboatError('USAGE', `${what} is not a JSON array: ${(err as Error).message}`, { hint: 'e.g. ["age", "-d", "-i", "/etc/lifeboat/key.txt"], or plain words separated by spaces' });
    }
  } else argv = String(text).split(/\s+/).filter((w) => w.length > 0);
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a): a is string => typeof a === 'string') || (argv[0] as string).length === 0) {
    throw new LifeboatError('USAGE', `${what} is empty or not a list of strings`, { hint: 'give the program and its arguments, e.g. "age -d -i /etc/lifeboat/key.txt"' });
  }
  return argv;
}

/** One line of a program's stderr, for a message: whitespace folded, bounded. */
function oneLine(stderr: string): string {
  const line = stderr.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

export interface CommandResult {
  ok: boolean;
  stdout: Buffer;
  /** When not ok: exit status and stderr on one line. */
  failure?: string;
}

/**
 * Runs `argv` with `input` on stdin. A non-zero exit is a result (`ok: false`), not an
 * exception, because an unwrap program refusing one slot is expected; a program that
 * cannot start, hangs past the timeout, or prints more than the bound throws.
 */
export function runKeyCommand(argv: readonly string[], input: Buffer, what: string, timeoutMs = KEY_COMMAND_TIMEOUT_MS): Promise<CommandResult> {
  const [file, ...args] = argv as [string, ...string[]];
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], shell: false });
    const out: Buffer[] = [];
    let outBytes = 0;
    let stderr = '';
    let failed: LifeboatError | undefined;
    const stop = (err: LifeboatError) => {
      failed ??= err;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(
      () => stop(new LifeboatError('FAILED', `${what} "${file}" did not finish within ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`}`, { hint: 'it may be waiting for input (a passphrase prompt, a token touch): configure it to run unattended' })),
      timeoutMs,
    );
    child.stdout.on('data', (d: Buffer) => {
      outBytes += d.length;
      if (outBytes > MAX_KEY_COMMAND_OUTPUT) stop(new LifeboatError('FAILED', `${what} "${file}" printed more than ${MAX_KEY_COMMAND_OUTPUT / 1024} KiB`, { hint: 'it must print only the wrapped (or unwrapped) key, nothing else' }));
      else out.push(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < MAX_STDERR) stderr += d.toString('utf8').slice(0, MAX_STDERR - stderr.length);
    });
    // A program may exit without reading its input (a wrong option); that is its exit status's story.
    child.stdin.on('error', () => {});
    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const missing = err.code === 'ENOENT';
      reject(
        new LifeboatError(missing ? 'USAGE' : 'FAILED', `${what} "${file}" cannot be run: ${missing ? 'no such program' : err.code ?? err.message}`, {
          hint: missing ? 'install it, or give its full path; the command is run without a shell' : 'check the program and its permissions',
        }),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      if (failed) {
        stdout.fill(0);
        reject(failed);
        return;
      }
      if (code === 0) {
        resolve({ ok: true, stdout });
        return;
      }
      stdout.fill(0);
      const why = signal ? `was killed by ${signal}` : `exited with ${code}`;
      resolve({ ok: false, stdout: Buffer.alloc(0), failure: `"${file}" ${why}${stderr.trim() ? `: ${oneLine(stderr)}` : ''}` });
    });
    child.stdin.end(input);
  });
}

/**
 * Wraps new slots' secrets with `argv` (`key add --wrap-command`). With `unwrapArgv`,
 * what was wrapped is unwrapped again at once and must give the secret back, so a
 * slot nobody can open is never added.
 */
export function commandWrapper(argv: readonly string[], unwrapArgv?: readonly string[]): SlotWrapper {
  return {
    type: 'command',
    async wrap(secret) {
      const r = await runKeyCommand(argv, secret, 'wrap command');
      if (!r.ok) {
        throw new LifeboatError('FAILED', `wrap command ${r.failure ?? 'failed'}`, { hint: 'run it by hand with a test input on stdin; nothing was added to the repository' });
      }
      if (r.stdout.length === 0) {
        throw new LifeboatError('FAILED', `wrap command "${argv[0]}" printed nothing`, { hint: 'it must print the wrapped key on stdout; nothing was added to the repository' });
      }
      if (unwrapArgv) {
        const back = await runKeyCommand(unwrapArgv, r.stdout, 'unwrap command');
        const same = back.ok && back.stdout.equals(secret);
        back.stdout.fill(0);
        if (!same) {
          throw new LifeboatError('FAILED', `the unwrap command does not give back what the wrap command wrapped${back.failure ? ` (${back.failure})` : ''}`, {
            hint: 'check that --unwrap-command holds the key --wrap-command encrypts to; nothing was added to the repository',
          });
        }
      }
      return { type: 'command', secret: r.stdout.toString('base64') };
    },
  };
}

/**
 * Opens command slots with `argv` (`--key-command`): each command slot's stored bytes
 * are fed to it in turn; a refusal (non-zero exit) moves on to the next slot.
 */
export function commandOpener(argv: readonly string[]): SlotOpener {
  let lastFailure: string | undefined;
  return {
    type: 'command',
    async unwrap(slot) {
      if (slot.type !== 'command') return undefined;
      const r = await runKeyCommand(argv, Buffer.from(slot.secret, 'base64'), 'key command');
      if (r.ok) return r.stdout;
      lastFailure = r.failure;
      return undefined;
    },
    noneOpened(n) {
      if (n === 0) {
        return new LifeboatError('WRONG_PASSWORD', 'this repository has no command key slot for --key-command to open', {
          hint: 'open it with a password, or add one with `lifeboat key add --wrap-command ...`; `lifeboat key list` shows the slots',
        });
      }
      return new LifeboatError('WRONG_PASSWORD', `the key command opened none of the ${n} command key slot${n === 1 ? '' : 's'}${lastFailure ? ` (last: ${lastFailure})` : ''}`, {
        hint: 'check --key-command / LIFEBOAT_KEY_COMMAND: it must decrypt what the wrap command produced (the right identity, key or credentials)',
      });
    },
  };
}
