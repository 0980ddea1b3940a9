/**
 * Webhook notifications on failure, RPO breach, archiving down and recovery: a JSON
 * body (or a Slack-compatible `{"text": ...}`), POSTed with a timeout and retried with
 * exponential backoff. A notification that cannot be delivered is logged, never
 * allowed to fail the job it reports on.
 *
 * Problems are incidents: the first occurrence notifies, repeats of the same problem
 * do not (a backup failing every minute is one incident, not 60 webhooks), each
 * target is reminded every `repeat` while it stays open, and its end is announced once.
 */
import type { NotificationConfig, NotifyEvent } from '../config/config.js';
import type { Clock } from './scheduler.js';

export interface Notice {
  event: NotifyEvent;
  source?: string;
  repository?: string;
  job?: { id: string; kind: string; status: string; error?: string | null };
  message: string;
  details?: Record<string, unknown>;
}

const ICON: Record<NotifyEvent, string> = { failure: ':red_circle:', rpo_breach: ':warning:', archive_down: ':red_circle:', diverged: ':red_circle:', archive_gap: ':warning:', recovery: ':large_green_circle:' };

export function body(format: NotificationConfig['format'], n: Notice, time: Date): Record<string, unknown> {
  if (format === 'slack') return { text: `${ICON[n.event]} Lifeboat: ${n.message}` };
  return { event: n.event, time: time.toISOString(), message: n.message, source: n.source ?? null, repository: n.repository ?? null, job: n.job ?? null, details: n.details ?? {} };
}

export class Notifier {
  /** Deliveries under way, so shutdown and tests can wait for them. */
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly targets: readonly NotificationConfig[],
    /** Called when a notification could not be delivered after every retry. */
    private readonly undelivered: (notification: string, message: string) => void,
    private readonly baseDelayMs = 1000,
  ) {}

  /** Sends to every target that listens to the event (or only to `only`); returns the targets sent to. */
  notify(n: Notice, only?: ReadonlySet<string>): NotificationConfig[] {
    const sent: NotificationConfig[] = [];
    for (const t of this.targets) {
      if (!t.on.includes(n.event) || (only && !only.has(t.name))) continue;
      sent.push(t);
      const p = this.deliver(t, n).finally(() => this.pending.delete(p));
      this.pending.add(p);
    }
    return sent;
  }

  listeners(event: NotifyEvent): readonly NotificationConfig[] {
    return this.targets.filter((t) => t.on.includes(event));
  }

  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  private async deliver(t: NotificationConfig, n: Notice): Promise<void> {
    const payload = JSON.stringify(body(t.format, n, new Date()));
    let lastError = '';
    for (let attempt = 0; attempt <= t.retries; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(60_000, this.baseDelayMs * 2 ** (attempt - 1))));
      try {
        const res = await fetch(t.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'lifeboat', ...t.headers },
          body: payload,
          signal: AbortSignal.timeout(t.timeoutSeconds * 1000),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return;
        lastError = `HTTP ${res.status}`;
        // A 4xx other than 408/429 will not get better by retrying.
        if (res.status < 500 && res.status !== 408 && res.status !== 429) break;
      } catch (err) {
        lastError = (err as Error).message;
      }
    }
    this.undelivered(t.name, `notification "${t.name}" (${n.event}) not delivered: ${lastError}`);
  }
}

interface Incident {
  notice: Notice;
  since: number;
  /** Occurrences so far (failed runs of a job; 1 for states such as a breach). */
  count: number;
  /** When each target was last told, by target name. */
  told: Map<string, number>;
}

/**
 * Open problems, one per key (`failure:backup:orders`, `rpo:orders`, `archive:orders`).
 * Only `raise` of a new key and `resolve` of an open one send anything; `remind` sends
 * the reminders that are due. Incidents live in memory: a restarted daemon reports
 * a problem that persists once more, which is what an operator would want.
 */
export class Incidents {
  private readonly open = new Map<string, Incident>();

  constructor(
    private readonly notifier: Notifier,
    private readonly clock: Pick<Clock, 'now'>,
  ) {}

  isOpen(key: string): boolean {
    return this.open.has(key);
  }

  /** Opens the incident and notifies; an open one only counts the occurrence and keeps the newest notice for reminders. */
  raise(key: string, notice: Notice): void {
    const now = this.clock.now();
    const open = this.open.get(key);
    if (open) {
      open.count++;
      open.notice = notice;
      return;
    }
    const sent = this.notifier.notify(notice);
    this.open.set(key, { notice, since: now, count: 1, told: new Map(sent.map((t) => [t.name, now])) });
  }

  /** Closes the incident and announces its end; false (and nothing sent) when none was open. */
  resolve(key: string, notice: Notice): boolean {
    const open = this.open.get(key);
    if (!open) return false;
    this.open.delete(key);
    this.notifier.notify({ ...notice, details: { ...notice.details, since: new Date(open.since).toISOString(), occurrences: open.count } });
    return true;
  }

  /** Sends every reminder that is due: per target, `repeat` after it was last told. */
  remind(): void {
    const now = this.clock.now();
    for (const i of this.open.values()) {
      const due = new Set(
        this.notifier
          .listeners(i.notice.event)
          .filter((t) => t.repeatSeconds !== null && now - (i.told.get(t.name) ?? i.since) >= t.repeatSeconds * 1000)
          .map((t) => t.name),
      );
      if (due.size === 0) continue;
      const since = new Date(i.since).toISOString();
      const times = i.count > 1 ? ` (${i.count} times)` : '';
      for (const t of this.notifier.notify({ ...i.notice, message: `still unresolved since ${since}${times}: ${i.notice.message}`, details: { ...i.notice.details, reminder: true, since, occurrences: i.count } }, due)) {
        i.told.set(t.name, now);
      }
    }
  }
}
