/**
 * Markup and formatting for the dashboard. Every value from the API is escaped
 * before it reaches the page: html`` escapes what it interpolates, and only markup
 * built by html`` itself (a Safe) passes through unescaped.
 */

/** Markup that is already safe; anything else interpolated into html`` is escaped. */
export class Safe {
  constructor(readonly markup: string) {}
  toString(): string {
    return this.markup;
  }
}

/** What html`` accepts: text (escaped), Safe markup, lists of either, or nothing. */
export type Piece = Safe | string | number | boolean | null | undefined | readonly Piece[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

export function piece(value: Piece): string {
  if (value instanceof Safe) return value.markup;
  if (Array.isArray(value)) return value.map(piece).join('');
  if (value === null || value === undefined || value === false) return '';
  return esc(value);
}

/** Tagged template: html`<td>${text}</td>` escapes text; nested html`` stays markup. */
export function html(strings: TemplateStringsArray, ...values: Piece[]): Safe {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += piece(values[i]) + (strings[i + 1] ?? '');
  return new Safe(out);
}

/** The one element `selector` names; the page's own markup has it, so a miss is a bug worth an error. */
export function $<T extends HTMLElement = HTMLElement>(selector: string): T {
  const el = document.querySelector<T>(selector);
  if (!el) throw new Error(`the page has no ${selector}`);
  return el;
}

// --- formatting -------------------------------------------------------------

export function isoTime(value: string): string {
  const t = Date.parse(value);
  return Number.isNaN(t) ? String(value) : new Date(t).toISOString();
}

/** "2026-11-21 20:01:37" (UTC), or an em dash. */
export function shortTime(value: string | null | undefined): string {
  if (!value) return '—';
  const t = Date.parse(value);
  if (Number.isNaN(t)) return String(value);
  return new Date(t).toISOString().slice(0, 19).replace('T', ' ');
}

export function timeCell(value: string | null | undefined): Safe {
  if (!value) return html`<span class="muted">—</span>`;
  return html`<time datetime="${isoTime(value)}" title="${isoTime(value)}">${shortTime(value)}</time>`;
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = Number(n);
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

/** Seconds as "80 ms", "4.2 s", "12 s", "4m 12s", "3h 05m", "2d 4h". */
export function formatSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(Number(s))) return '—';
  const v = Math.max(0, Number(s));
  if (v < 1) return `${Math.round(v * 1000)} ms`;
  if (v < 10) return `${v.toFixed(1)} s`;
  if (v < 60) return `${Math.round(v)} s`;
  const total = Math.round(v);
  if (total < 3600) return `${Math.floor(total / 60)}m ${String(total % 60).padStart(2, '0')}s`;
  if (total < 86400) return `${Math.floor(total / 3600)}h ${String(Math.floor((total % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(total / 86400)}d ${Math.floor((total % 86400) / 3600)}h`;
}

/** A target in seconds, as written in lifeboat.yaml (the one duration grammar): "1h", "10min", "90s". */
export function formatTarget(s: number | null | undefined): string | null {
  if (s === null || s === undefined) return null;
  if (s % 86400 === 0) return `${s / 86400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}min`;
  return `${s}s`;
}

export function ago(value: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t)) return '';
  const s = (Date.now() - t) / 1000;
  if (s < 5) return 'just now';
  return `${formatSeconds(s)} ago`;
}
