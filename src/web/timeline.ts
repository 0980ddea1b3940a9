/**
 * The recoverable window of one source as an SVG timeline: the span a restore can
 * reach (log coverage as a band), the gaps in it (hatched red), every backup (a dot
 * one can click to restore that snapshot), every drill (a diamond, green or red), and
 * the chosen moment (a line). A click elsewhere on the band picks that moment. Drawn
 * from the daemon's window (GET /sources/:name/window) or, without one, from the
 * backups and drills alone (`estimated`). No inline styles or scripts (the page's CSP).
 */
import type { Backup, Drill, RecoverableWindow } from '../api/dto.js';
import { timeTicks } from './chart.js';
import { formatSeconds, html, shortTime, type Safe } from './html.js';

export interface Span {
  from: number;
  to: number;
}

export interface TimelineModel {
  source: string;
  /** The first and last recoverable moments (ms), null when nothing is recoverable. */
  earliest: number | null;
  latest: number | null;
  backups: Array<{ t: number; id: string }>;
  /** Where a log reaches: any moment inside is recoverable. */
  coverage: Span[];
  gaps: Array<Span & { reason: string }>;
  drills: Array<{ t: number; ok: boolean; rto: number | null }>;
  /** Drawn from backups and drills only: the daemon reported no window. */
  estimated: boolean;
  /** Any moment in the coverage can be restored; false: only the backups' (or a group's points') moments. */
  continuous: boolean;
}

/**
 * The timeline of a source from the daemon's window (GET /sources/:name/window), with
 * every drill of the source from the drill history (the window names only the last);
 * `window` null (a daemon without the route): backups and drills alone.
 */
export function timelineModel(source: string, window: RecoverableWindow | null, backups: readonly Backup[], drills: readonly Drill[], continuous: boolean): TimelineModel {
  const at = (s: string) => Date.parse(s);
  const drillsOf = drills.filter((d) => d.source === source).map((d) => ({ t: at(d.time), ok: d.ok, rto: d.rto_seconds })).filter((d) => Number.isFinite(d.t));
  if (window) {
    // A group's timeline also shows its members' gaps: a point inside one may not be restorable.
    const memberGaps = (window.members ?? []).flatMap((m) => m.gaps.map((g) => ({ from: at(g.from), to: at(g.to), reason: `${m.name}: ${g.reason}` })));
    const last = window.last_drill;
    return {
      source,
      earliest: window.earliest === null ? null : at(window.earliest),
      latest: window.latest === null ? null : at(window.latest),
      backups: window.snapshots.map((s) => ({ t: at(s.time), id: s.id })),
      coverage: window.coverage.map((c) => ({ from: at(c.from), to: at(c.to) })),
      gaps: [...window.gaps.map((g) => ({ from: at(g.from), to: at(g.to), reason: g.reason })), ...memberGaps],
      drills: drillsOf.length || !last ? drillsOf : [{ t: at(last.time), ok: last.ok, rto: last.rto_seconds }],
      estimated: false,
      continuous: window.continuous,
    };
  }
  // No window from the daemon: the backups are the recoverable points; a source with a log
  // reaches (about) from its first backup to now.
  const points = backups.map((b) => ({ t: at(b.time), id: b.snapshot_id })).filter((b) => Number.isFinite(b.t));
  const times = points.map((b) => b.t);
  const earliest = times.length ? Math.min(...times) : null;
  const latest = times.length ? (continuous ? Date.now() : Math.max(...times)) : null;
  return {
    source,
    earliest,
    latest,
    backups: points,
    coverage: continuous && earliest !== null && latest !== null ? [{ from: earliest, to: latest }] : [],
    gaps: [],
    drills: drillsOf,
    estimated: true,
    continuous,
  };
}


export const TIMELINE = { W: 1180, H: 150, left: 20, right: 20, top: 30, bottom: 40 } as const;

/** The timeline's x range in time: the whole window with a little room either side. */
export function timeRange(m: TimelineModel): [number, number] | null {
  const all = [
    ...m.backups.map((b) => b.t),
    ...m.drills.map((d) => d.t),
    ...m.coverage.flatMap((c) => [c.from, c.to]),
    ...m.gaps.flatMap((g) => [g.from, g.to]),
    ...(m.earliest !== null ? [m.earliest] : []),
    ...(m.latest !== null ? [m.latest] : []),
  ];
  if (all.length === 0) return null;
  const a = Math.min(...all);
  const b = Math.max(...all);
  const pad = b > a ? (b - a) * 0.04 : 30_000;
  return [a - pad, b + pad];
}

/** The timeline's markup; `chosen` is the picked moment (ms) or snapshot id. */
export function timelineMarkup(m: TimelineModel, chosen: { time?: number; snapshot?: string }): Safe {
  const range = timeRange(m);
  if (!range) return html`<p class="empty" data-testid="timeline-empty">Nothing of ${m.source} is recoverable yet: no backup.</p>`;
  const [t0, t1] = range;
  const { W, H, left, right, top, bottom } = TIMELINE;
  const iw = W - left - right;
  const x = (t: number) => left + ((t - t0) / (t1 - t0)) * iw;
  const laneY = top + 22;
  const bandH = 26;
  const win = m.earliest !== null && m.latest !== null ? { from: m.earliest, to: m.latest } : null;
  const chosenX = chosen.time !== undefined ? x(chosen.time) : undefined;
  return html`<svg viewBox="0 0 ${W} ${H}" class="timeline" role="img" aria-label="Recoverable window of ${m.source}" data-testid="timeline" data-t0="${t0}" data-t1="${t1}">
      <defs><pattern id="gap-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" class="gap-bg"/><line x1="0" y1="0" x2="0" y2="6" class="gap-line"/></pattern></defs>
      <rect class="pick-area" data-action="pick-time" x="${left}" y="${top}" width="${iw}" height="${H - top - bottom}"/>
      <line class="baseline" x1="${left}" x2="${left + iw}" y1="${laneY + bandH / 2}" y2="${laneY + bandH / 2}"/>
      ${win ? html`<rect class="window ${m.continuous ? '' : 'discrete'}" data-testid="timeline-window" data-action="pick-time" x="${x(win.from)}" y="${laneY}" width="${Math.max(2, x(win.to) - x(win.from))}" height="${bandH}" rx="4"><title>${m.continuous ? 'Recoverable' : 'Backups'} ${shortTime(new Date(win.from).toISOString())} – ${shortTime(new Date(win.to).toISOString())} UTC${m.continuous ? '' : ': only their moments can be restored; a moment between them gets the newest backup at or before it'}</title></rect>` : ''}
      ${m.coverage.map((c) => html`<rect class="coverage" data-testid="timeline-coverage" data-action="pick-time" x="${x(c.from)}" y="${laneY + 6}" width="${Math.max(2, x(c.to) - x(c.from))}" height="${bandH - 12}" rx="3"><title>Log ${shortTime(new Date(c.from).toISOString())} – ${shortTime(new Date(c.to).toISOString())} UTC: any moment in it can be restored</title></rect>`)}
      ${m.gaps.map((g) => html`<rect class="gap" data-testid="timeline-gap" data-from="${new Date(g.from).toISOString()}" data-to="${new Date(g.to).toISOString()}" x="${x(g.from)}" y="${laneY - 4}" width="${Math.max(4, x(g.to) - x(g.from))}" height="${bandH + 8}"><title>Gap ${shortTime(new Date(g.from).toISOString())} – ${shortTime(new Date(g.to).toISOString())} UTC: ${g.reason}</title></rect>`)}
      ${m.backups.map((b) => html`<circle class="backup ${chosen.snapshot === b.id ? 'chosen' : ''}" data-testid="timeline-backup" data-action="pick-snapshot" data-snapshot="${b.id}" cx="${x(b.t)}" cy="${laneY + bandH / 2}" r="6"><title>Backup ${b.id.slice(0, 8)} ${shortTime(new Date(b.t).toISOString())} UTC: click to restore it</title></circle>`)}
      ${m.drills.map((d) => html`<path class="drill ${d.ok ? 'ok' : 'failed'}" data-testid="timeline-drill" d="M${x(d.t)},${top - 2} l6,8 l-6,8 l-6,-8 z"><title>Drill ${shortTime(new Date(d.t).toISOString())} UTC: ${d.ok ? `passed, RTO ${formatSeconds(d.rto)}` : 'failed'}</title></path>`)}
      ${chosenX !== undefined ? html`<line class="chosen-line" data-testid="timeline-chosen" x1="${chosenX}" x2="${chosenX}" y1="${top - 6}" y2="${H - bottom + 4}"/>` : ''}
      ${timeTicks(t0, t1, 7).map((k, i, all) => html`<line class="tick-mark" x1="${x(k.t)}" x2="${x(k.t)}" y1="${H - bottom + 6}" y2="${H - bottom + 11}"/><text class="tick" x="${x(k.t)}" y="${H - bottom + 24}" text-anchor="${i === 0 ? 'start' : i === all.length - 1 ? 'end' : 'middle'}">${k.label}</text>`)}
    </svg>`;
}

/** The moment (ms) under a click on the timeline's SVG. */
export function timeAt(svg: SVGSVGElement, clientX: number): number | null {
  const t0 = Number(svg.dataset.t0);
  const t1 = Number(svg.dataset.t1);
  const box = svg.getBoundingClientRect();
  if (!Number.isFinite(t0) || !Number.isFinite(t1) || box.width === 0) return null;
  const { W, left, right } = TIMELINE;
  const vx = ((clientX - box.left) / box.width) * W;
  const f = (vx - left) / (W - left - right);
  return t0 + Math.min(1, Math.max(0, f)) * (t1 - t0);
}
