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
