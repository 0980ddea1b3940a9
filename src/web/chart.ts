/**
 * The chart of one source's backups: size (left axis) and duration (right axis)
 * over time, as an SVG drawn from the API's backup list. No inline styles or
 * scripts, so the page's strict Content-Security-Policy allows it.
 */
import type { Backup } from '../api/dto.js';
import { formatBytes, formatSeconds, html, shortTime, type Safe } from './html.js';

type Unit = readonly [factor: number, name: string];
const SIZE_UNITS: readonly Unit[] = [[1, 'B'], [1024, 'KiB'], [1024 ** 2, 'MiB'], [1024 ** 3, 'GiB'], [1024 ** 4, 'TiB']];
const TIME_UNITS: readonly Unit[] = [[0.001, 'ms'], [1, 's'], [60, 'min'], [3600, 'h']];

interface Point {
  t: number;
  size: number;
  seconds: number;
  id: string;
}

/** Ticks from 0 to a round maximum, in the largest unit not above `max`. */
function axis(max: number, units: readonly Unit[]): { max: number; ticks: Array<{ value: number; label: string }> } {
  let [factor, unit] = units[0] as Unit;
  for (const [f, u] of units) if (max >= f) [factor, unit] = [f, u];
  const top = Math.max(max / factor, 1e-9);
  const rough = top / 4;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= rough) || 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v <= top + step * 1e-9; v += step) ticks.push(v);
  const last = () => ticks[ticks.length - 1] ?? 0;
  if (last() < top) ticks.push(last() + step);
  const decimals = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
  return {
    max: last() * factor,
    ticks: ticks.map((v) => ({ value: v * factor, label: `${Number(v.toFixed(decimals))} ${unit}` })),
  };
}

/** Labels for `count` evenly spaced moments, at the resolution the span needs (the chart's and the timeline's axis). */
export function timeTicks(t0: number, t1: number, count: number): Array<{ t: number; label: string }> {
  const span = t1 - t0;
  const fmt = (t: number) => {
    const iso = new Date(t).toISOString();
    if (span < 10 * 60 * 1000) return iso.slice(11, 19);
    if (span < 24 * 3600 * 1000) return iso.slice(11, 16);
    return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
  };
  const ticks = Array.from({ length: count }, (_, i) => {
    const t = t0 + (span * i) / (count - 1);
    return { t, label: fmt(t) };
  });
  // A short span repeats labels at this resolution: keep the first of each.
  return ticks.filter((k, i) => i === 0 || k.label !== ticks[i - 1]?.label);
}

function linePath(points: Point[], x: (t: number) => number, y: (p: Point) => number): string {
  return points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p).toFixed(1)}`).join(' ');
}

/**
 * The chart's markup for `name`'s backups; `loaded` false while they are being read.
 * `name` null: there are no sources.
 */
export function chartMarkup(name: string | null, backups: readonly Backup[], loaded: boolean): Safe {
  if (name && !loaded) return html`<p class="empty">Loading backups of ${name}…</p>`;
  const points = backups
    .map((b) => ({ t: Date.parse(b.time), size: Number(b.size_bytes) || 0, seconds: (Number(b.duration_ms) || 0) / 1000, id: b.snapshot_id }))
    .filter((p) => Number.isFinite(p.t))
    .sort((a, b) => a.t - b.t);
  const first = points[0]?.t;
  const last = points[points.length - 1]?.t;
  if (first === undefined || last === undefined) return html`<p class="empty">${name ? `No backups of ${name} yet.` : 'No sources.'}</p>`;
  const W = 600;
  const H = 260;
  const m = { top: 16, right: 70, bottom: 46, left: 74 };
  const iw = W - m.left - m.right;
  const ih = H - m.top - m.bottom;
  // A little room either side, so the first and last points are not on the axes.
  const pad = last > first ? Math.max((last - first) * 0.06, 500) : 30_000;
  const t0 = first - pad;
  const t1 = last + pad;
  const sizeAxis = axis(Math.max(...points.map((p) => p.size)), SIZE_UNITS);
  const timeAxis = axis(Math.max(...points.map((p) => p.seconds)), TIME_UNITS);
  const x = (t: number) => m.left + ((t - t0) / (t1 - t0)) * iw;
  const ySize = (p: Point) => m.top + ih - (p.size / sizeAxis.max) * ih;
  const yTime = (p: Point) => m.top + ih - (p.seconds / timeAxis.max) * ih;
  const yOf = (v: number, max: number) => m.top + ih - (v / max) * ih;
  const xTicks = timeTicks(t0, t1, 5);

  return html`<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="Backup size and duration over time for ${name}" data-testid="backup-chart">
      <g class="grid">${sizeAxis.ticks.map((k) => html`<line x1="${m.left}" x2="${m.left + iw}" y1="${yOf(k.value, sizeAxis.max)}" y2="${yOf(k.value, sizeAxis.max)}"/>`)}</g>
      <g class="axis">
        <line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + ih}"/>
        <line x1="${m.left + iw}" x2="${m.left + iw}" y1="${m.top}" y2="${m.top + ih}"/>
        <line x1="${m.left}" x2="${m.left + iw}" y1="${m.top + ih}" y2="${m.top + ih}"/>
        ${sizeAxis.ticks.map((k) => html`<text class="tick size" x="${m.left - 8}" y="${yOf(k.value, sizeAxis.max) + 4}" text-anchor="end">${k.label}</text>`)}
        ${timeAxis.ticks.map((k) => html`<text class="tick duration" x="${m.left + iw + 8}" y="${yOf(k.value, timeAxis.max) + 4}" text-anchor="start">${k.label}</text>`)}
        ${xTicks.map((k) => html`<line class="tick-mark" x1="${x(k.t)}" x2="${x(k.t)}" y1="${m.top + ih}" y2="${m.top + ih + 5}"/><text class="tick" x="${x(k.t)}" y="${m.top + ih + 18}" text-anchor="middle">${k.label}</text>`)}
        <text class="axis-title size" transform="translate(16 ${m.top + ih / 2}) rotate(-90)" text-anchor="middle">Size</text>
        <text class="axis-title duration" transform="translate(${W - 12} ${m.top + ih / 2}) rotate(90)" text-anchor="middle">Duration</text>
        <text class="axis-title" x="${m.left + iw / 2}" y="${H - 6}" text-anchor="middle">Time (UTC)</text>
      </g>
      <path class="series size" d="${linePath(points, x, ySize)}"/>
      <path class="series duration" d="${linePath(points, x, yTime)}"/>
      ${points.map((p) => html`<circle class="point size" cx="${x(p.t)}" cy="${ySize(p)}" r="4"><title>${shortTime(new Date(p.t).toISOString())} UTC: ${formatBytes(p.size)}</title></circle>`)}
      ${points.map((p) => html`<rect class="point duration" x="${x(p.t) - 3.5}" y="${yTime(p) - 3.5}" width="7" height="7"><title>${shortTime(new Date(p.t).toISOString())} UTC: ${formatSeconds(p.seconds)}</title></rect>`)}
    </svg>`;
}
