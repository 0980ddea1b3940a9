/**
 * The global options choosing what opens a repository instead of a password: only the
 * full CLI registers them. Apart from context.ts so that the lean entry point (pg
 * archive-push/-get, once per WAL segment) loads neither the option parser nor the
 * config schemas.
 */
import type { Command } from 'commander';
import { flagOf } from './commands/options.js';
import { repositoryOptions } from '../config/model.js';

export function registerKeyOptions(program: Command): void {
  program
    .addOption(
      flagOf(repositoryOptions().shape.key_command, {
        arg: '<cmd>',
        description: "open with a command key slot: this program gets each slot's wrapped key on stdin and prints the key (argv: words, or a JSON array; or LIFEBOAT_KEY_COMMAND)",
      }),
    )
    .option('--pkcs11-module <path>', 'open with a PKCS#11 key slot: the token\'s PKCS#11 library (or LIFEBOAT_PKCS11_MODULE)')
    .option('--pkcs11-token <label>', 'PKCS#11 token label (or LIFEBOAT_PKCS11_TOKEN)')
    .option('--pkcs11-key-label <label>', 'label of the AES key in the token (or LIFEBOAT_PKCS11_KEY_LABEL; default "lifeboat")')
    .option('--pkcs11-pin-file <file>', 'read the token\'s user PIN from a file (or LIFEBOAT_PKCS11_PIN_FILE / LIFEBOAT_PKCS11_PIN)');
}
