/**
 * The dashboard's client of the daemon's REST API (/api/v1), typed by the API's own
 * DTOs (src/api/dto.ts, type-only: nothing server-side reaches the browser). It makes
 * the calls the CLI and scripts make, with the user's token, so the page can do
 * nothing that token could not do anyway.
 */
import type { Backup, Drill, ErrorBody, FileTicket, Group, GroupRestorePlan, Job, Jobs, RecoverableWindow, RestorePlan, SnapshotTree, Source, Status } from '../api/dto.js';

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
  job(id: string): Promise<Job> {
    return this.call(`jobs/${encodeURIComponent(id)}`);
  }
  /** The recoverable window: earliest and latest moment, backups, log coverage, gaps. */
  window(source: string): Promise<RecoverableWindow> {
    return this.call(`sources/${encodeURIComponent(source)}/window`);
  }
  groupWindow(group: string): Promise<RecoverableWindow> {
    return this.call(`groups/${encodeURIComponent(group)}/window`);
  }
  groupRestorePlan(group: string, choice: { time?: string; point?: string }): Promise<GroupRestorePlan> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(choice)) if (v !== undefined && v !== '') q.set(k, v);
    return this.call(`groups/${encodeURIComponent(group)}/restore-plan?${q}`);
  }
  restorePlan(source: string, choice: { time?: string; snapshot?: string; txn?: string; before_txn?: string; target?: string }): Promise<RestorePlan> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(choice)) if (v !== undefined && v !== '') q.set(k, v);
    return this.call(`sources/${encodeURIComponent(source)}/restore-plan?${q}`);
  }
  /** Starts what a plan says (POST /restores or /recoveries); answers the job(s) started. */
  startRestore(url: string, body: Record<string, unknown>): Promise<Job | Jobs | { job: Job }> {
    return this.call(url.replace(/^\/api\/v1\//, ''), { method: 'POST', body });
  }
  /** Cancels a running job (operator): it ends failed, INTERRUPTED, once its process stopped. */
  cancelJob(id: string): Promise<Job> {
    return this.call(`jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
  }
  tree(repository: string, snapshot: string, path: string): Promise<SnapshotTree> {
    return this.call(`repositories/${encodeURIComponent(repository)}/snapshots/${encodeURIComponent(snapshot)}/tree?path=${encodeURIComponent(path)}`);
  }
  /** A one-use link to one file of a snapshot (the bearer token cannot ride on a plain link): the browser streams it to disk. */
  fileTicket(repository: string, snapshot: string, path: string): Promise<FileTicket> {
    return this.call(`repositories/${encodeURIComponent(repository)}/snapshots/${encodeURIComponent(snapshot)}/file-ticket?path=${encodeURIComponent(path)}`, { method: 'POST' });
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
    const res = await this.fetch(path, init);
    const body = await bodyOf(res);
    if (!res.ok) throw new ApiError(res.status, body as Partial<ErrorBody> | null);
    return body as T;
  }

  private async fetch(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(new URL(path, API), init);
    } catch {
      throw new ApiError(0, { error: { code: 'UNREACHABLE', message: 'cannot reach the Lifeboat daemon', hint: 'is `lifeboat serve` running? The dashboard keeps trying.' } });
    }
  }
}

/** A response's JSON body, or null. */
async function bodyOf(res: Response): Promise<Partial<ErrorBody> | null> {
  const text = await res.text();
  try {
    return text ? (JSON.parse(text) as Partial<ErrorBody>) : null;
  } catch {
    return null;
  }
}
