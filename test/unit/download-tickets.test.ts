import { describe, expect, it } from 'vitest';
import { DownloadTickets, TICKET_TTL_MS } from '../../src/daemon/download-tickets.js';

const file = { repository: 'main', snapshot: 'abcd', path: '/a', actor: 'olga', role: 'operator' as const };

describe('download tickets', () => {
  it('are taken by their first use and lapse after a minute', () => {
    let now = 1_000_000;
    const t = new DownloadTickets(() => now);
    const a = t.issue(file);
    expect(a.ticket).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(t.take(a.ticket)).toMatchObject(file);
    expect(t.take(a.ticket)).toBeUndefined();
    const b = t.issue(file);
    now += TICKET_TTL_MS;
    expect(t.take(b.ticket)).toBeUndefined();
  });

  it('keep at most 64, dropping the oldest', () => {
    const t = new DownloadTickets(() => 0);
    const all = Array.from({ length: 65 }, () => t.issue(file).ticket);
    expect(t.take(all[0] as string)).toBeUndefined();
    expect(t.take(all[1] as string)).toBeDefined();
    expect(t.take(all[64] as string)).toBeDefined();
  });
});
