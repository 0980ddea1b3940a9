/**
 * The dashboard's tables (sources, snapshots, jobs, drills) and the header's status
 * chips, rendered from the state. Rows are patched, not replaced, so a button under
 * the pointer survives a refresh in the middle of a click.
 */
import type { Group, Job, Source } from '../api/dto.js';
import { $, ago, formatBytes, formatSeconds, formatTarget, html, isoTime, piece, shortTime, timeCell, type Piece, type Safe } from './html.js';
import { isFinished, type State } from './state.js';

interface Cell {
  markup: string;
  cls: string;
}
interface Row {
  key: string;
  attrs: Record<string, string | null>;
  cells: Cell[];
}

/** What each cell was last given, so an unchanged cell is left alone. */
const cellMarkup = new WeakMap<Element, string>();

const cell = (content: Piece, cls = ''): Cell => ({ markup: piece(content), cls });

/** Brings a tbody to `rows`, touching only what changed. */
function patchRows(tbody: HTMLElement, rows: Row[]): void {
  const existing = new Map([...tbody.children].map((tr) => [(tr as HTMLElement).dataset.key, tr as HTMLElement]));
  rows.forEach((row, i) => {
    let tr = existing.get(row.key);
    if (tr) existing.delete(row.key);
    else {
      tr = document.createElement('tr');
      tr.dataset.key = row.key;
    }
    for (const [name, value] of Object.entries(row.attrs)) {
      if (value === null) tr.removeAttribute(name);
      else if (tr.getAttribute(name) !== value) tr.setAttribute(name, value);
    }
    patchCells(tr, row.cells);
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] ?? null);
  });
  for (const tr of existing.values()) tr.remove();
}

function patchCells(tr: HTMLElement, cells: Cell[]): void {
  cells.forEach((c, i) => {
    const td = tr.children[i] ?? tr.appendChild(document.createElement('td'));
    if (cellMarkup.get(td) !== c.markup) {
      td.innerHTML = c.markup;
      cellMarkup.set(td, c.markup);
    }
    if (td.className !== c.cls) td.className = c.cls;
  });
  while (tr.children.length > cells.length) tr.lastElementChild?.remove();
}

function showEmpty(id: string, empty: boolean): void {
  $(`#${id}`).hidden = !empty;
}

// --- sources ----------------------------------------------------------------

type Level = 'ok' | 'over' | 'unknown' | 'none';

/** "ok" within target, "over" past it, "unknown" without a value or a target. */
function against(value: number | null, target: number | null): Level {
  if (target === null) return value === null ? 'unknown' : 'none';
  if (value === null) return 'unknown';
  return value <= target ? 'ok' : 'over';
}

function meter(value: number | null, target: number | null, level: Level): Piece {
  if (value === null || !target) return '';
  const pct = Math.max(2, Math.min(100, Math.round((value / target) * 100)));
  // SVG attributes rather than an inline style, so a strict Content-Security-Policy allows it.
  return html`<svg class="meter ${level}" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true"><title>${Math.round((value / target) * 100)}% of the target</title>
      <rect class="track" width="100" height="6" rx="3"/><rect class="fill" width="${pct}" height="6" rx="3"/></svg>`;
}

function lastBackupCell(s: Source): Safe {
  const testid = `last-backup-${s.name}`;
  if (!s.last_backup) return html`<span class="never" data-testid="${testid}">never</span>`;
  const t = s.last_backup.time;
  return html`<time class="mono" data-testid="${testid}" datetime="${isoTime(t)}">${isoTime(t)}</time>
      <div class="sub">${ago(t)} · ${formatBytes(s.last_backup.size_bytes)}${s.failing ? html` · <span class="bad">last run failed</span>` : ''}</div>`;
}

function rpoCell(s: Source): Safe {
  // No recoverable data at all counts as over target: there is nothing to restore.
  const level = s.rpo_seconds === null && s.rpo_target_seconds !== null ? 'over' : against(s.rpo_seconds, s.rpo_target_seconds);
  const target = formatTarget(s.rpo_target_seconds);
  return html`<span class="metric ${level}" data-testid="rpo-${s.name}">${s.rpo_seconds === null ? 'nothing recoverable' : formatSeconds(s.rpo_seconds)}</span>
      ${target ? html`<span class="target">/ ${target}</span>` : html`<span class="target">no target</span>`}
      ${meter(s.rpo_seconds, s.rpo_target_seconds, level)}`;
}

function rtoCell(s: Source): Safe {
  const level = against(s.rto_seconds, s.rto_target_seconds);
  const target = formatTarget(s.rto_target_seconds);
  const drill = s.last_drill;
  return html`<span class="metric ${level}" data-testid="rto-${s.name}">${s.rto_seconds === null ? 'not measured' : formatSeconds(s.rto_seconds)}</span>
      ${target ? html`<span class="target">/ ${target}</span>` : html`<span class="target">no target</span>`}
      ${meter(s.rto_seconds, s.rto_target_seconds, level)}
      <div class="sub">${drill ? html`last drill ${drill.ok ? html`<span class="good">passed</span>` : html`<span class="bad">failed</span>`} ${ago(drill.time)}` : 'no drill yet'}</div>`;
}

// The archive's own verdict (docs/daemon.md): ok, lagging, failing, down or starting.
const ARCHIVE_BADGE: Record<string, [string, string]> = { ok: ['ok', 'archiving'], lagging: ['lagging', 'lagging'], failing: ['over', 'failing'], down: ['over', 'down'], starting: ['starting', 'starting'] };

function archiveCell(s: Source): Safe {
  const a = s.archive;
  if (!a) return html`<span class="muted">—</span>`;
  const [cls, label] = ARCHIVE_BADGE[a.state] ?? ['over', a.state];
  const method = a.method === 'archive_command' ? 'archive_command' : `${a.restarts} restart${a.restarts === 1 ? '' : 's'}`;
  const failures = a.archive_command && a.archive_command.failed_count ? html` · <span class="bad">${a.archive_command.failed_count} failed</span>` : '';
  return html`<span class="badge ${cls}" data-testid="archive-${s.name}" title="${a.hint || ''}">${label}</span>
      <div class="sub">lag ${a.lag_seconds === null ? '—' : formatSeconds(a.lag_seconds)} · ${method}${failures}</div>
      ${a.error ? html`<div class="sub bad" title="${a.hint || a.error}">${a.error}</div>` : ''}`;
}

function isRunning(state: State, kind: Job['kind'], source: string): boolean {
  return state.jobs.some((j) => j.kind === kind && j.source === source && !isFinished(j));
}

function actionButton(state: State, action: 'backup' | 'drill', source: string, label: string, busyLabel: string): Safe {
  const busy = state.pending.has(`${action}:${source}`) || isRunning(state, action, source);
  return html`<button type="button" class="${action === 'backup' ? 'primary' : 'secondary'}" data-action="${action}" data-source="${source}"
      data-testid="${action}-${source}" ${busy ? html`disabled aria-busy="true"` : ''}>${busy ? busyLabel : label}</button>`;
}

export function renderSources(state: State): void {
  const rows = state.sources.map((s) => ({
    key: s.name,
    attrs: { 'data-source': s.name, class: s.name === state.selected ? 'selected' : null, 'aria-selected': String(s.name === state.selected) },
    cells: [
      cell(html`<button type="button" class="link source-name" data-action="select" data-source="${s.name}">${s.name}</button>
          ${s.continuous ? html`<div class="sub">continuous</div>` : ''}<div class="sub">repository ${s.repository}</div>`),
      cell(html`<span class="kind kind-${s.kind}">${s.kind}</span>`),
      cell(lastBackupCell(s)),
      cell(rpoCell(s)),
      cell(rtoCell(s)),
      cell(archiveCell(s)),
      cell(html`<div class="actions">${actionButton(state, 'backup', s.name, 'Back up now', 'Backing up…')}${actionButton(state, 'drill', s.name, 'Run drill', 'Drilling…')}</div>`, 'actions-col'),
    ],
  }));
  patchRows($('#sources-body'), rows);
  showEmpty('sources-empty', rows.length === 0);
}

// --- consistency groups -----------------------------------------------------

function holdCell(g: Group): Safe {
  const p = g.last_point;
  if (!p) return html`<span class="muted" data-testid="hold-${g.name}">—</span><div class="sub">max_hold ${g.max_hold_ms} ms</div>`;
  // Past 80 % of max_hold is the LifeboatGroupHoldNearLimit alert's line.
  const level = p.hold_ms > 0.8 * p.max_hold_ms ? 'over' : 'ok';
  return html`<span class="metric ${level}" data-testid="hold-${g.name}">${p.hold_ms.toFixed(1)} ms</span>
      <span class="target">/ ${p.max_hold_ms} ms</span>
      ${meter(p.hold_ms, p.max_hold_ms, level)}
      ${p.frozen ? '' : html`<div class="sub">no freeze hook: read back to back</div>`}`;
}

function ageCell(g: Group): Safe {
  if (g.rpo_seconds === null) return html`<span class="never" data-testid="age-${g.name}">no point</span>`;
  // Two schedule intervals is the LifeboatGroupPointStale alert's line.
  const limit = g.schedule_interval_seconds === null ? null : 2 * g.schedule_interval_seconds;
  const level = limit === null ? 'none' : g.rpo_seconds <= limit ? 'ok' : 'over';
  return html`<span class="metric ${level}" data-testid="age-${g.name}">${formatSeconds(g.rpo_seconds)}</span>
      <div class="sub">${g.schedule_interval_seconds === null ? 'no schedule' : `captured every ${formatSeconds(g.schedule_interval_seconds)}`}</div>`;
}

function captureCell(g: Group): Safe {
  const c = g.last_capture;
  if (!c) return html`<span class="muted" data-testid="capture-${g.name}">none yet</span>`;
  return html`<span class="status status-${c.status}" data-testid="capture-${g.name}">${c.status}</span>
      ${c.finished_at ? html`<div class="sub">${ago(c.finished_at)}</div>` : ''}
      ${c.error ? html`<div class="sub bad" title="${c.error}">${c.error_code ? `${c.error_code}: ` : ''}${c.error}</div>` : ''}`;
}

function drillCell(g: Group): Safe {
  const d = g.last_drill;
  if (!d) return html`<span class="never" data-testid="drill-${g.name}">never drilled</span>`;
  return html`<span class="status status-${d.ok ? 'succeeded' : 'failed'}" data-testid="drill-${g.name}">${d.ok ? `RTO ${formatSeconds(d.rto_seconds ?? 0)}` : 'failed'}</span>
      <div class="sub">${ago(d.time)}</div>
      ${d.error ? html`<div class="sub bad" title="${d.error}">${d.error}</div>` : ''}`;
}

export function renderGroups(state: State): void {
  const rows = state.groups.map((g) => {
    const busy = state.pending.has(`group-backup:${g.name}`) || state.jobs.some((j) => j.kind === 'group-backup' && j.source === g.name && !isFinished(j));
    return {
      key: g.name,
      attrs: { 'data-testid': `group-${g.name}` },
      cells: [
        cell(html`<strong>${g.name}</strong><div class="sub">repository ${g.repository} · ${g.points} point${g.points === 1 ? '' : 's'}</div>`),
        cell(html`<span data-testid="members-${g.name}">${g.members.map((m, i) => html`${i > 0 ? ', ' : ''}${m.name} <span class="kind kind-${m.kind}">${m.kind}</span>`)}</span>`),
        cell(g.last_point ? html`<span class="mono" data-testid="point-${g.name}" title="${g.last_point.id}">${g.last_point.id}</span><div class="sub">${timeCell(g.last_point.time)}</div>` : html`<span class="never" data-testid="point-${g.name}">never</span>`),
        cell(holdCell(g)),
        cell(ageCell(g)),
        cell(captureCell(g)),
        cell(drillCell(g)),
        cell(html`<div class="actions"><button type="button" class="primary" data-action="group-backup" data-group="${g.name}" data-testid="group-backup-${g.name}" ${busy ? html`disabled aria-busy="true"` : ''}>${busy ? 'Capturing…' : 'Capture now'}</button><button type="button" class="secondary" data-action="recover-group" data-group="${g.name}" data-testid="recover-group-${g.name}">Recover…</button></div>`, 'actions-col'),
      ],
    };
  });
  patchRows($('#groups-body'), rows);
  showEmpty('groups-empty', rows.length === 0);
}

// --- snapshots --------------------------------------------------------------

export function renderSnapshots(state: State): void {
  const name = state.selected;
  $('#snapshots-title').textContent = name ? `Snapshots of ${name}` : 'Snapshots';
  const list = state.backupsFor === name ? state.backups : [];
  const newest = list[0];
  $('#snapshots-count').textContent = newest ? `${list.length} snapshot${list.length === 1 ? '' : 's'}, newest ${ago(newest.time)}` : '';
  const rows = list.map((b) => ({
    key: b.snapshot_id,
    attrs: { 'data-testid': `snapshot-${b.snapshot_id.slice(0, 8)}` },
    cells: [
      cell(html`<span class="mono" title="${b.snapshot_id}">${b.snapshot_id.slice(0, 8)}</span>`),
      cell(timeCell(b.time)),
      cell(formatBytes(b.size_bytes), 'num'),
      cell(formatBytes(b.added_bytes), 'num'),
      cell(formatSeconds(b.duration_ms / 1000), 'num'),
      cell(html`<div class="actions"><button type="button" class="secondary" data-action="restore-snapshot" data-snapshot="${b.snapshot_id}" data-testid="restore-${b.snapshot_id.slice(0, 8)}">Restore…</button><button type="button" class="secondary" data-action="browse" data-snapshot="${b.snapshot_id}" data-repository="${b.repository}" data-time="${b.time}" data-testid="browse-${b.snapshot_id.slice(0, 8)}">Browse</button></div>`, 'actions-col'),
    ],
  }));
  patchRows($('#snapshots-body'), rows);
  showEmpty('snapshots-empty', Boolean(name) && state.backupsFor === name && rows.length === 0);
}

// --- jobs -------------------------------------------------------------------

function jobDuration(j: Job): Piece {
  if (j.duration_ms !== null) return formatSeconds(j.duration_ms / 1000);
  if (j.status === 'running' && j.started_at) {
    const reported = j.progress?.elapsed_seconds;
    const elapsed = typeof reported === 'number' && Number.isFinite(reported) ? reported : (Date.now() - Date.parse(j.started_at)) / 1000;
    return html`<span class="muted">${formatSeconds(elapsed)}…</span>`;
  }
  return html`<span class="muted">—</span>`;
}

function jobProgress(p: Job['progress']): string {
  if (!p) return '';
  const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  const bits = [typeof p.phase === 'string' ? p.phase : null, num(p.files) ? `${p.files} files` : null, num(p.bytes) ? formatBytes(p.bytes) : null].filter(Boolean);
  // Percent and ETA once the job's totals are known (docs/progress.md).
  if (num(p.percent)) bits.push(`${Math.floor(p.percent)}%`);
  if (num(p.eta_seconds)) bits.push(`ETA ${formatSeconds(p.eta_seconds)}`);
  return bits.join(' · ');
}

function statusCell(j: Job): Safe {
  const detail = j.status === 'running' ? jobProgress(j.progress) : j.error || '';
  return html`<span class="status status-${j.status}">${j.status}</span>
      ${detail ? html`<div class="sub ${j.status === 'failed' ? 'bad' : ''}" title="${j.status === 'failed' && j.error_hint ? `${detail}\nhint: ${j.error_hint}` : detail}">${j.error_code && j.status === 'failed' ? `${j.error_code}: ` : ''}${detail}</div>` : ''}`;
}

export function renderJobs(state: State): void {
  const rows = state.jobs.map((j) => ({
    key: j.id,
    attrs: { 'data-testid': `job-${j.id}`, 'data-status': j.status },
    cells: [
      cell(html`<span class="mono small">${j.id}</span>`),
      cell(j.kind),
      cell(j.source ?? html`<span class="muted">${j.repository ?? '—'}</span>`),
      cell(statusCell(j)),
      cell(j.trigger),
      cell(j.actor ?? html`<span class="muted">—</span>`),
      cell(timeCell(j.started_at)),
      cell(timeCell(j.finished_at)),
      cell(jobDuration(j), 'num'),
    ],
  }));
  patchRows($('#jobs-body'), rows);
  showEmpty('jobs-empty', rows.length === 0);
}

// --- drills -----------------------------------------------------------------

export function renderDrills(state: State): void {
  const rows = state.drills.map((d) => ({
    key: `${d.source}@${d.time}`,
    attrs: {},
    cells: [
      cell(timeCell(d.time)),
      cell(d.source),
      cell(d.snapshot ? html`<span class="mono" title="${d.snapshot}">${d.snapshot.slice(0, 8)}</span>` : html`<span class="muted">—</span>`),
      cell(html`<span class="badge ${d.ok ? 'ok' : 'over'}">${d.ok ? 'passed' : 'failed'}</span>`),
      cell(formatSeconds(d.rto_seconds), 'num'),
      cell(formatSeconds(d.rpo_seconds), 'num'),
      cell(d.error ? html`<span class="bad" title="${d.error}">${d.error}</span>` : html`<span class="muted">—</span>`, 'error-col'),
    ],
  }));
  patchRows($('#drills-body'), rows);
  showEmpty('drills-empty', rows.length === 0);
}

// --- the header -------------------------------------------------------------

export function renderStatus(state: State): void {
  const s = state.status;
  const el = $('#daemon-status');
  if (!s) {
    el.hidden = true;
    return;
  }
  const next = s.schedules
    .filter((x): x is { schedule: string; next: string } => x.next !== null)
    .sort((a, b) => Date.parse(a.next) - Date.parse(b.next))[0];
  const checks = s.repositories.map(
    (r) =>
      html`<span class="chip" title="${r.last_check ? `last check ${isoTime(r.last_check.time)}` : 'never checked'}">${r.name}: ${r.last_check ? (r.last_check.ok ? html`<span class="good">checked ${ago(r.last_check.time)}</span>` : html`<span class="bad">check failed</span>`) : html`<span class="muted">not checked</span>`}</span>`,
  );
  el.innerHTML = html`<span class="chip">v${s.version}</span>
      <span class="chip">up ${formatSeconds((Date.now() - Date.parse(s.started_at)) / 1000)}</span>
      <span class="chip ${s.running_jobs ? 'running' : ''}">${s.running_jobs} running</span>
      ${next ? html`<span class="chip" title="${isoTime(next.next)}">next: ${next.schedule} ${shortTime(next.next).slice(5)}</span>` : ''}
      ${checks}`.markup;
  el.hidden = false;
}
