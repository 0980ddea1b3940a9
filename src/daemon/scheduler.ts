/**
 * Cron schedules with time zones (croner computes the fire times), an optional random
 * jitter, and one catch-up run when a fire time passed while the daemon was down.
 * Time comes from a Clock so tests drive it; overlap is the caller's rule (a fire
 * while the same job still runs is recorded as skipped).
 */
import { Cron } from 'croner';
import type { ScheduleConfig } from '../config/config.js';
import type { Catalog } from './catalog.js';

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export type FireReason = 'schedule' | 'catch-up';

/** The cron expression of a schedule, in its time zone (computes fire times; runs nothing). */
export function cronOf(s: Pick<ScheduleConfig, 'cron' | 'timezone'>): Cron {
  return new Cron(s.cron, { paused: true, ...(s.timezone ? { timezone: s.timezone } : {}) });
}

/** Timers never wait longer than this; a long wait is re-armed (setTimeout's limit, clock jumps). */
const MAX_WAIT_MS = 60 * 60 * 1000;

export class Scheduler {
  private readonly timers = new Map<string, unknown>();
  private readonly crons = new Map<string, Cron>();
  private stopped = false;

  constructor(
    private readonly schedules: readonly ScheduleConfig[],
    private readonly catalog: Catalog,
    private readonly fire: (schedule: ScheduleConfig, at: Date, reason: FireReason) => void,
    private readonly clock: Clock = systemClock,
    private readonly random: () => number = Math.random,
  ) {
    for (const s of schedules) this.crons.set(s.name, cronOf(s));
  }

  /** The next fire time of one schedule after `from`. */
  nextAfter(name: string, from: Date): Date | null {
    return this.crons.get(name)?.nextRun(from) ?? null;
  }

  upcoming(): Array<{ schedule: string; next: string | null }> {
    const now = new Date(this.clock.now());
    return this.schedules.map((s) => ({ schedule: s.name, next: this.nextAfter(s.name, now)?.toISOString() ?? null }));
  }

  start(): void {
    const now = new Date(this.clock.now());
    for (const s of this.schedules) {
      const last = this.catalog.lastFire(s.name);
      if (last === undefined) {
        // First start: nothing was missed.
        this.catalog.setLastFire(s.name, now);
      } else {
        const missed = this.nextAfter(s.name, last);
        if (missed && missed.getTime() <= now.getTime()) {
          // However many were missed, one run catches up.
          this.catalog.setLastFire(s.name, now);
          if (s.catchUp) this.fire(s, missed, 'catch-up');
        }
      }
      this.arm(s);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) this.clock.clearTimeout(t);
    this.timers.clear();
  }

  private arm(s: ScheduleConfig, planned?: { next: Date; due: number }): void {
    if (this.stopped) return;
    let plan = planned;
    if (!plan) {
      const next = this.nextAfter(s.name, new Date(this.clock.now()));
      if (!next) return;
      const jitter = s.jitterSeconds > 0 ? Math.floor(this.random() * s.jitterSeconds * 1000) : 0;
      plan = { next, due: next.getTime() + jitter };
    }
    const { next, due } = plan;
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(s.name);
      if (this.stopped) return;
      if (this.clock.now() < due) return this.arm(s, plan); // a capped wait: not due yet
      this.catalog.setLastFire(s.name, next);
      this.fire(s, next, 'schedule');
      this.arm(s);
    }, Math.min(Math.max(0, due - this.clock.now()), MAX_WAIT_MS));
    this.timers.set(s.name, handle);
  }
}
