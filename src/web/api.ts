/**
 * The dashboard's client of the daemon's REST API (/api/v1), typed by the API's own
 * DTOs (src/api/dto.ts, type-only: nothing server-side reaches the browser). It makes
 * the calls the CLI and scripts make, with the user's token, so the page can do
 * nothing that token could not do anyway.
 */
import type { Backup, Drill, ErrorBody, Group, Job, Jobs, Source, Status } from '../api/dto.js';

/** The API, relative to this page (/dashboard/), so a path prefix in a reverse proxy still works. */
const API = new URL('../api/v1/', window.location.href);

/** A refused or failed call, with the API's code, message and hint. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly hint: string | null;
  constructor(status: number, body: Partial<ErrorBody> | null) {
    const e = body?.error;
    super(e?.message || `the daemon answered HTTP ${status}`);
    this.status = status;
    this.code = e?.code || `HTTP_${status}`;
    this.hint = e?.hint || null;
  }
}

export class Api {
  constructor(private readonly token: () => string | null) {}

  status(): Promise<Status> {
    return this.call('status');
  }
  sources(): Promise<Source[]> {
    return this.call('sources');
  }
  groups(): Promise<Group[]> {
    return this.call('groups');
  }
  groupBackup(group: string): Promise<Job> {
    return this.call(`groups/${encodeURIComponent(group)}/backup`, { method: 'POST' });
  }
  jobs(limit: number): Promise<Job[]> {
    return this.call(`jobs?limit=${limit}`);
  }
  drills(): Promise<Drill[]> {
    return this.call('drills');
  }
  backups(source: string): Promise<Backup[]> {
    return this.call(`backups?source=${encodeURIComponent(source)}`);
  }
  backupNow(source: string): Promise<Job> {
    return this.call(`sources/${encodeURIComponent(source)}/backup`, { method: 'POST' });
  }
  drill(source: string): Promise<Jobs> {
    return this.call('drills', { method: 'POST', body: { source } });
  }

  /** Calls the API with the token; resolves to the parsed body, rejects with an ApiError. */
  private async call<T>(path: string, options: { method?: 'GET' | 'POST'; body?: unknown } = {}): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json', authorization: `Bearer ${this.token() ?? ''}` };
    const init: RequestInit = { method: options.method ?? 'GET', headers, cache: 'no-store' };
    // No content-type without a body: fastify refuses an empty application/json body.
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    let res: Response;
    try {
      res = await fetch(new URL(path, API), init);
    } catch {
      throw new ApiError(0, { error: { code: 'UNREACHABLE', message: 'cannot reach the Lifeboat daemon', hint: 'is `lifeboat serve` running? The dashboard keeps trying.' } });
    }
    const text = await res.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!res.ok) throw new ApiError(res.status, body as Partial<ErrorBody> | null);
    return body as T;
  }
}
