/** Escaping stored names for the terminal, and where the daemon may listen. */
import { describe, expect, it } from 'vitest';
import { forTerminal } from '../../src/util/terminal.js';
import { chmodSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { checkListen, isLoopback, loadMetricsToken } from '../../src/daemon/listen.js';
import { parseConfig } from '../../src/config/config.js';
import { tmpdir } from '../helpers.js';
import { isLifeboatError } from '../../src/errors.js';

describe('forTerminal', () => {
  it('shows control characters, DEL, C1 and bidi overrides as escapes, and leaves the rest alone', () => {
    expect(forTerminal('evil\u001b]0;owned\u0007name\nforged line\ttab\r')).toBe('evil\\e]0;owned\\x07name\\nforged line\\ttab\\r');
    expect(forTerminal('a\u007fb\u009bc\u202eexe.txt\u2066')).toBe('a\\x7fb\\x9bc\\u{202e}exe.txt\\u{2066}');
    expect(forTerminal('Grüße/日本語 ok-file_1.txt')).toBe('Grüße/日本語 ok-file_1.txt');
    expect(forTerminal('')).toBe('');
  });
});

describe('checkListen', () => {
  const token = 'x'.repeat(24);
  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.2', 'example.org', '128.0.0.1']) expect(isLoopback(h), h).toBe(false);
  });

  it('allows loopback as it is', () => {
    expect(checkListen({ host: '127.0.0.1' }, false)).toEqual([]);
  });

  it('refuses beyond loopback without a metrics token, and without TLS unless --insecure (then warns)', () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return isLifeboatError(e) ? [e.code, e.message] : e;
      }
      return undefined;
    };
    expect(code(() => checkListen({ host: '0.0.0.0', tls: { cert: 'c', key: 'k' } }, false))).toEqual(['LISTEN_UNSAFE', expect.stringMatching(/server\.metrics_token/)]);
    expect(code(() => checkListen({ host: '0.0.0.0', metricsToken: token }, false))).toEqual(['LISTEN_UNSAFE', expect.stringMatching(/without TLS/)]);
    expect(checkListen({ host: '0.0.0.0', metricsToken: token, tls: { cert: 'c', key: 'k' } }, false)).toEqual([]);
    const warnings = checkListen({ host: '0.0.0.0', metricsToken: token }, true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^warning: listening on 0\.0\.0\.0 without TLS \(--insecure\)/);
  });
});

describe('server.metrics_token_file', () => {
  it('reads the token from a file only its owner reads; refuses a readable, short or missing one', () => {
    const dir = tmpdir('lb-mtok-');
    const config = () => parseConfig('server:\n  listen: 0.0.0.0:8470\n  metrics_token_file: token\n', path.join(dir, 'lifeboat.yaml'));
    const refused = () => {
      try {
        loadMetricsToken(config());
      } catch (e) {
        return isLifeboatError(e, 'CONFIG_INVALID') ? e.message : String(e);
      }
      return undefined;
    };
    expect(refused()).toMatch(/cannot read server\.metrics_token_file .*token: ENOENT/);
    writeFileSync(path.join(dir, 'token'), 'abcdef0123456789abcdef\n', { mode: 0o644 });
    chmodSync(path.join(dir, 'token'), 0o644);
    expect(refused()).toMatch(/can be read by other users/);
    chmodSync(path.join(dir, 'token'), 0o600);
    const c = config();
    loadMetricsToken(c);
    expect(c.server.metricsToken).toBe('abcdef0123456789abcdef');
    expect(checkListen(c.server, true)).toHaveLength(1);
    writeFileSync(path.join(dir, 'token'), 'short\n');
    expect(refused()).toMatch(/shorter than 16 characters/);
  });
});
