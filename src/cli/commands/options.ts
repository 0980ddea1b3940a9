/** Option parsers shared by commands. */
import { LifeboatError } from '../../errors.js';

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function parseTime(text: string): Date {
  const t = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(t.getTime())) {
    throw new LifeboatError('USAGE', `"${text}" is not an RFC 3339 time`, { hint: 'example: 2026-11-21T14:30:00Z' });
  }
  return t;
}

export function parsePercent(text: string): number {
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(text);
  const v = m ? Number(m[1]) : NaN;
  if (!(v > 0 && v <= 100)) throw new LifeboatError('USAGE', `"${text}" is not a percentage in (0, 100]`, { hint: 'example: 10%' });
  return v / 100;
}

/** Parses 500ms, 1s, 5m, 2h, 7d, 2w or a bare number of milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$/.exec(text.trim());
  if (!m) throw new LifeboatError('USAGE', `${flag} "${text}" is not a duration`, { hint: 'examples: 1s, 500ms, 5m, 1h, 7d' });
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h' | 'd' | 'w'];
  const ms = Number(m[1]) * unit;
  if (ms <= 0) throw new LifeboatError('USAGE', `${flag} must be more than zero`, { hint: 'examples: 1s, 500ms, 5m, 1h' });
  return ms;
}
