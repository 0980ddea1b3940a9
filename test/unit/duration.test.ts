/**
 * The one duration grammar (src/util/duration.ts) and the option model built on it:
 * what each spelling means, what is refused and with which hint, how mo and y count
 * on the calendar, and the JSON Schema the API takes from the model.
 */
import { describe, expect, it } from 'vitest';
import { after, before, durationMs, formatDuration, parseDuration, DurationError } from '../../src/util/duration.js';
import { parseConfig } from '../../src/config/config.js';
import { retentionOptions, tokenExpires } from '../../src/config/model.js';
import { jsonSchemaOf, parseOptionValue } from '../../src/config/schema.js';
import { sqliteOptions } from '../../src/sources/sqlite/options.js';
import { isLifeboatError } from '../../src/errors.js';

const MIN = 60_000;
const H = 60 * MIN;
const D = 24 * H;

describe('the duration grammar', () => {
  it.each([
    ['500ms', 500],
    ['90s', 90_000],
    ['30min', 30 * MIN],
    ['1h30min', 90 * MIN],
    ['1.5h', 90 * MIN],
    ['7d', 7 * D],
    ['2w', 14 * D],
    ['1d12h', 36 * H],
    ['0', 0],
  ])('%s is %d ms', (text, ms) => {
    expect(durationMs(parseDuration(text))).toBe(ms);
  });

  it('counts mo and y on the calendar, back from now and forward from now', () => {
    const now = Date.UTC(2026, 7, 31, 12); // 31 August 2026
    expect(new Date(before(parseDuration('6mo'), now)).toISOString()).toBe('2026-03-03T12:00:00.000Z'); // 31 February, normalised
    expect(new Date(before(parseDuration('1y'), now)).toISOString()).toBe('2025-08-31T12:00:00.000Z');
    expect(new Date(before(parseDuration('1mo2d5h'), now)).toISOString()).toBe('2026-07-29T07:00:00.000Z');
    expect(new Date(after(parseDuration('1mo'), Date.UTC(2026, 0, 15))).toISOString()).toBe('2026-02-15T00:00:00.000Z');
    // An interval of a month is the span that ends now: August has 31 days, so 31 days before 31 August is 31 July.
    expect(durationMs(parseDuration('1mo'), now)).toBe(31 * D);
  });

  it('writes a canonical spelling that parses back to the same value', () => {
    for (const text of ['1y2mo3d4h5min6s7ms', '2w', '90min', '1.5h']) {
      const d = parseDuration(text);
      expect(parseDuration(formatDuration(d))).toEqual(d);
    }
    expect(formatDuration(parseDuration('2w'))).toBe('14d');
  });

  it.each([
    ['30m', /m is ambiguous/, /30min for minutes or 30mo for months/],
    ['6m', /m is ambiguous/, /6min for minutes or 6mo for months/],
    ['2', /has no unit/, /2s for seconds/],
    ['1.5mo', /whole number/, /45d/],
    ['5x', /unknown unit "x"/, /units: ms s min h d w mo y/],
    ['1h1h', /names "h" twice/, /e\.g\./],
    ['soon', /is not a duration/, /e\.g\./],
    ['', /empty/, /e\.g\./],
  ])('refuses %j with a hint', (text, message, hint) => {
    let err: unknown;
    try {
      parseDuration(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DurationError);
    expect((err as DurationError).message).toMatch(message);
    expect((err as DurationError).hint).toMatch(hint);
  });
});

describe('the option model', () => {
  const yaml = (keys: string) => `repositories:\n  main: { stores: [/srv/repo] }\nsources:\n  app:\n    kind: sqlite\n    path: /srv/app.db\n${keys}`;
  const configError = (text: string): { message: string; hint?: string } => {
    try {
      parseConfig(text, '/etc/lifeboat.yaml');
    } catch (e) {
      if (isLifeboatError(e, 'CONFIG_INVALID')) return { message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
      throw e;
    }
    throw new Error('the file was accepted');
  };

  it('refuses m and a bare number in lifeboat.yaml at the line of the key, with the hint', () => {
    expect(configError(yaml('    retention: { keep_within: 30m }\n'))).toEqual({
      message: '/etc/lifeboat.yaml:7: "keep_within" must be a duration: "30m": m is ambiguous',
      hint: expect.stringMatching(/^write 30min for minutes or 30mo for months/),
    });
    expect(configError(yaml('    replicate: true\n    interval: 2\n'))).toEqual({ message: '/etc/lifeboat.yaml:8: "interval" must be a duration: "2" has no unit', hint: expect.stringMatching(/2s for seconds/) });
    expect(configError(yaml('    targets: { rpo: 0 }\n')).message).toMatch(/"rpo" must be more than zero/);
  });

  it('accepts verify_interval: off, as the flag of the same name does', () => {
    expect(parseConfig(yaml('    verify_interval: off\n'), 'f.yaml').sources.get('app')?.verifyInterval).toBe('off');
    expect(parseOptionValue(sqliteOptions().shape.verify_interval, 'off', '--verify-interval')).toBe('off');
  });

  it('turns a refused flag value into a USAGE error with the same hint', () => {
    let err: unknown;
    try {
      parseOptionValue(retentionOptions().shape.keep_within, '30m', '--keep-within');
    } catch (e) {
      err = e;
    }
    expect(isLifeboatError(err, 'USAGE')).toBe(true);
    expect((err as Error).message).toBe('--keep-within must be a duration: "30m": m is ambiguous');
    expect((err as { hint?: string }).hint).toMatch(/30min for minutes or 30mo for months/);
    expect(parseOptionValue(retentionOptions().shape.keep_daily, '7', '--keep-daily')).toBe(7);
    expect(() => parseOptionValue(tokenExpires(), '30s', '--expires')).toThrow(/must be at least 1min/);
  });

  it('gives the API a JSON Schema in which durations are strings, documented', () => {
    const schema = jsonSchemaOf(retentionOptions()) as { type: string; properties: Record<string, { type?: string; description?: string }> };
    expect(schema.type).toBe('object');
    expect(schema.properties.keep_within).toEqual({ type: 'string', description: expect.stringMatching(/keep snapshots newer than now minus this/) });
    expect(schema.properties.keep_daily?.type).toBe('integer');
    const expires = jsonSchemaOf(tokenExpires()) as { anyOf: Array<{ type?: string; const?: string }> };
    expect(expires.anyOf).toEqual(expect.arrayContaining([expect.objectContaining({ const: 'never' }), expect.objectContaining({ type: 'string' })]));
  });
});
