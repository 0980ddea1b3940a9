/**
 * One-use download tickets for the dashboard: a browser cannot put the bearer token on
 * a plain link, so it fetched a snapshot's file whole into memory (up to 1 GiB) before
 * saving it. An operator's POST …/file-ticket gets a ticket instead; the link
 * `GET /api/v1/downloads/TICKET` then streams the file to disk like any download. A
 * ticket is 256 random bits, names one file of one snapshot, is taken by its first use,
 * lapses after a minute, and carries its operator's name for the audit trail. Kept in
 * memory only (a restarted daemon has none), at most 64 at once.
 */
import { randomBytes } from 'node:crypto';
import type { Role } from './auth.js';

export interface DownloadTicket {
  repository: string;
  snapshot: string;
  path: string;
  /** The operator's token name and role: the download is audited under them. */
  actor: string;
  role: Role;
  expiresAt: number;
}

export const TICKET_TTL_MS = 60_000;
const MAX_TICKETS = 64;

export class DownloadTickets {
  private readonly tickets = new Map<string, DownloadTicket>();

  constructor(private readonly now: () => number = Date.now) {}

  issue(t: Omit<DownloadTicket, 'expiresAt'>): { ticket: string; expiresAt: number } {
    this.sweep();
    // The oldest goes first when too many wait (a Map keeps insertion order).
    while (this.tickets.size >= MAX_TICKETS) this.tickets.delete(this.tickets.keys().next().value as string);
    const ticket = randomBytes(32).toString('base64url');
    const expiresAt = this.now() + TICKET_TTL_MS;
    this.tickets.set(ticket, { ...t, expiresAt });
    return { ticket, expiresAt };
  }

  /** The ticket's download, once: undefined for one unknown, used or lapsed. */
  take(ticket: string): DownloadTicket | undefined {
    const t = this.tickets.get(ticket);
    this.tickets.delete(ticket);
    return t && t.expiresAt > this.now() ? t : undefined;
  }

  private sweep(): void {
    const now = this.now();
    for (const [k, t] of this.tickets) if (t.expiresAt <= now) this.tickets.delete(k);
  }
}
