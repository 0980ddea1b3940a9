/**
 * Webhook notifications on failure, RPO breach and recovery: a JSON body (or a
 * Slack-compatible `{"text": ...}`), POSTed with a timeout and retried with
 * exponential backoff. A notification that cannot be delivered is logged, never
 * allowed to fail the job it reports on.
 */
import type { NotificationConfig, NotifyEvent } from '../config/config.js';

export interface Notice {
  event: NotifyEvent;
  source?: string;
  repository?: string;
  job?: { id: string; kind: string; status: string; error?: string | null };
  message: string;
  details?: Record<string, unknown>;
}

const ICON: Record<NotifyEvent, string> = { failure: ':red_circle:', rpo_breach: ':warning:', recovery: ':large_green_circle:' };

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

  notify(n: Notice): void {
    for (const t of this.targets) {
      if (!t.on.includes(n.event)) continue;
      const p = this.deliver(t, n).finally(() => this.pending.delete(p));
      this.pending.add(p);
    }
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
