/**
 * The dashboard's "Recover" card for the selected source: its recoverable window as a
 * timeline (timeline.ts), a moment or a snapshot picked on it, the plan the daemon
 * makes for it (GET /sources/:name/restore-plan: what comes back, from which backup,
 * where to, how long the last drill took, and what would refuse it), starting it
 * with the very call the plan names (operator role; the daemon checks the target
 * against its restore roots), and the restore job followed until it ends.
 */
import type { GroupRestorePlan, Job, Jobs, RecoverableWindow, RestorePlan } from '../api/dto.js';
import { ApiError, type Api } from './api.js';
import { $, formatBytes, formatSeconds, html, shortTime, type Safe } from './html.js';
import { isFinished, type State } from './state.js';
import { timeAt, timelineMarkup, timelineModel, type TimelineModel } from './timeline.js';

export interface Ui {
  api: Api;
  report(err: unknown, origin: 'poll' | 'action'): void;
  info(message: string): void;
}

/** How often a started restore job is read while it runs. */
const FOLLOW_MS = 1000;

/** A moment, a snapshot, or (SQLite, Redis) a transaction: up to and including `txn`, or just before `before_txn`. */
interface Choice {
  time?: string;
  snapshot?: string;
  txn?: string;
  before_txn?: string;
}

/** What was typed in the moment field: `before txn N` / `txn N` (numbers from `sqlite history` / `redis history`), else a time. */
export function typedChoice(text: string): Choice {
  const before = /^(?:before|undo)\s+(?:txn\s+)?#?([1-9][0-9]{0,14})$/i.exec(text);
  if (before) return { before_txn: before[1] as string };
  const upTo = /^txn\s+#?([1-9][0-9]{0,14})$/i.exec(text);
  if (upTo) return { txn: upTo[1] as string };
  return { time: text };
}

interface Recover {
  source: string | null;
  /** A consistency group instead of a source (its "Recover…" button): restored to one of its points. */
  group: string | null;
  groupPlan: GroupRestorePlan | null;
  /** The daemon's window; null: it has none (drawn from backups and drills). */
  window: RecoverableWindow | null;
  windowLoaded: boolean;
  model: TimelineModel | null;
  choice: Choice;
  /** A target the user typed (the plan suggests one otherwise). */
  target: string | undefined;
  plan: RestorePlan | null;
  planError: string | null;
  planning: boolean;
  starting: boolean;
  /** The restore jobs started from this card, newest state. */
  jobs: Job[];
  /** Jobs whose cancel was asked for from this card. */
  canceling: Set<string>;
  follow: ReturnType<typeof setTimeout> | undefined;
}

const r: Recover = { source: null, group: null, groupPlan: null, window: null, windowLoaded: false, model: null, choice: {}, target: undefined, plan: null, planError: null, planning: false, starting: false, jobs: [], canceling: new Set(), follow: undefined };
let ui: Ui;
/** Answers for an earlier choice are dropped. */
let planSeq = 0;

export function initRecover(u: Ui): void {
  ui = u;
  document.addEventListener('change', (e) => {
    const el = e.target as HTMLElement | null;
    if (el?.id === 'recover-target') {
      r.target = (el as HTMLInputElement).value.trim() || undefined;
      void plan();
    }
  });
  $('#recover-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $<HTMLInputElement>('#recover-time').value.trim();
    if (text) choose(typedChoice(text));
  });
}

/** Finished jobs when the window was last read: a job that ends may change it. */
let windowKey = '';

/** The selected source changed (or a job finished): read its window (again). */
export function recoverSelect(state: State): void {
  if (r.group) {
    if (r.windowLoaded && state.finishedKey !== windowKey) loadWindow(state);
    return;
  }
  if (state.selected === r.source) {
    if (state.selected && r.windowLoaded && state.finishedKey !== windowKey) loadWindow(state);
    return;
  }
  clearTimeout(r.follow);
  Object.assign(r, { source: state.selected, group: null, groupPlan: null, window: null, windowLoaded: false, model: null, choice: {}, target: undefined, plan: null, planError: null, jobs: [] });
  $<HTMLInputElement>('#recover-time').value = '';
  renderRecover(state);
  if (state.selected) loadWindow(state);
}

/** The user picked a source: the card is about it again (also when a group had it). */
export function recoverSource(state: State): void {
  if (r.group) r.source = null;
  recoverSelect(state);
}

/** The card is about consistency group `name` from now on, until a source is picked. */
export function recoverGroup(name: string, state: State): void {
  clearTimeout(r.follow);
  Object.assign(r, { source: null, group: name, groupPlan: null, window: null, windowLoaded: false, model: null, choice: {}, target: undefined, plan: null, planError: null, jobs: [] });
  $<HTMLInputElement>('#recover-time').value = '';
  renderRecover(state);
  loadWindow(state);
  document.querySelector('#recover-card')?.scrollIntoView({ block: 'start' });
}

/** Which source or group the card is about, to drop answers that arrive for another. */
const subject = () => (r.group !== null ? `group:${r.group}` : `source:${r.source ?? ''}`);

function loadWindow(state: State): void {
  const name = r.group ?? (state.selected as string);
  const mine = subject();
  windowKey = state.finishedKey;
  void (r.group !== null ? ui.api.groupWindow(name) : ui.api.window(name)).then(
    (w) => {
      if (subject() !== mine) return;
      r.window = w;
      r.windowLoaded = true;
      renderRecover(state);
    },
    (err: unknown) => {
      if (subject() !== mine) return;
      // A daemon without the window route still has backups and drills to draw.
      if (!(err instanceof ApiError && err.status === 404 && /no such endpoint/.test(err.message))) ui.report(err, 'action');
      r.window = null;
      r.windowLoaded = true;
      renderRecover(state);
    },
  );
}

let lastState: State | null = null;

/** What each container was last given: an unchanged one is left alone (an input keeps what is being typed). */
const shown = new Map<string, string>();
function put(selector: string, markup: string): void {
  if (shown.get(selector) === markup) return;
  shown.set(selector, markup);
  $(selector).innerHTML = markup;
}

export function renderRecover(state: State): void {
  lastState = state;
  if (r.group !== null) return renderGroup(r.group);
  const name = r.source;
  $('#recover-title').textContent = name ? `Recover ${name}` : 'Recover';
  const source = state.sources.find((s) => s.name === name);
  if (!name || !source) {
    put('#timeline', html`<p class="empty">Select a source.</p>`.markup);
    put('#recover-plan', '');
    return;
  }
  if (state.backupsFor === name && r.windowLoaded) {
    r.model = timelineModel(name, r.window, state.backups, state.drills, source.continuous);
    put('#timeline', timelineMarkup(r.model, { ...(r.choice.time ? { time: Date.parse(r.choice.time) } : {}), ...(r.choice.snapshot ? { snapshot: r.choice.snapshot } : {}) }).markup);
    const m = r.model;
    $('#recover-sub').textContent = m.earliest !== null && m.latest !== null
      ? `Recoverable ${shortTime(new Date(m.earliest).toISOString())} – ${shortTime(new Date(m.latest).toISOString())} UTC · ${m.backups.length} backup${m.backups.length === 1 ? '' : 's'} · ${m.gaps.length} gap${m.gaps.length === 1 ? '' : 's'}${m.estimated ? ' · estimated from the backups (the daemon reports no window)' : ''}`
      : '';
  } else if (!r.model) {
    put('#timeline', html`<p class="empty">Reading the recoverable window of ${name}…</p>`.markup);
  }
  put('#recover-plan', planMarkup().markup);
  put('#recover-progress', progressMarkup().markup);
}

/** The card for a group: its points on the timeline (members' gaps too), the group restore's plan. */
function renderGroup(name: string): void {
  $('#recover-title').textContent = `Recover group ${name}`;
  if (r.windowLoaded) {
    r.model = timelineModel(name, r.window, [], [], false);
    put('#timeline', timelineMarkup(r.model, { ...(r.choice.time ? { time: Date.parse(r.choice.time) } : {}), ...(r.choice.snapshot ? { snapshot: r.choice.snapshot } : {}) }).markup);
    const m = r.model;
    $('#recover-sub').textContent = `${m.backups.length} point${m.backups.length === 1 ? '' : 's'} · members ${(r.window?.members ?? []).map((x) => x.name).join(', ')} · ${m.gaps.length} gap${m.gaps.length === 1 ? '' : 's'} in the members' logs`;
  } else {
    put('#timeline', html`<p class="empty">Reading the points of group ${name}…</p>`.markup);
  }
  put('#recover-plan', groupPlanMarkup().markup);
  put('#recover-progress', progressMarkup().markup);
}

function rerender(): void {
  if (lastState) renderRecover(lastState);
}

/** Picks a moment or a snapshot and asks the daemon for its plan. */
function choose(choice: Choice): void {
  r.choice = choice;
  if (choice.time) $<HTMLInputElement>('#recover-time').value = choice.time;
  void plan();
}

async function plan(): Promise<void> {
  if (!r.source && r.group === null) return;
  const seq = ++planSeq;
  r.planning = true;
  r.planError = null;
  rerender();
  try {
    if (r.group !== null) {
      if (r.choice.txn !== undefined || r.choice.before_txn !== undefined) throw new Error('a group restores to one of its points: transaction numbers are per source');
      // A group restores to a point: a backup's dot on its timeline is one.
      const gp = await ui.api.groupRestorePlan(r.group, { ...(r.choice.time ? { time: r.choice.time } : {}), ...(r.choice.snapshot ? { point: r.choice.snapshot } : {}) });
      if (seq !== planSeq) return;
      r.groupPlan = gp;
    } else {
      const p = await ui.api.restorePlan(r.source as string, { ...r.choice, ...(r.target ? { target: r.target } : {}) });
      if (seq !== planSeq) return;
      r.plan = p;
    }
  } catch (err) {
    if (seq !== planSeq) return;
    r.plan = null;
    r.groupPlan = null;
    r.planError = err instanceof ApiError ? `${err.code}: ${err.message}${err.hint ? ` (hint: ${err.hint})` : ''}` : String(err);
  } finally {
    if (seq === planSeq) {
      r.planning = false;
      rerender();
    }
  }
}

function planMarkup(): Safe {
  if (r.planError) return html`<p class="bad" data-testid="plan-error">${r.planError}</p>`;
  const p = r.plan;
  if (!p) {
    return html`<p class="muted">${r.planning ? 'Planning…' : 'Click the timeline to pick a moment (or a backup’s dot to restore that snapshot), or type a moment above.'}</p>`;
  }
  const blocked = p.problems.length > 0;
  const base = p.snapshot ? { id: p.snapshot.id, time: p.snapshot.time } : baseFromWindow(p.time);
  const what = p.method === 'replay'
    ? html`base backup ${base ? html`<span class="mono" data-testid="plan-base">${base.id.slice(0, 8)}</span> (${shortTime(base.time)} UTC)` : 'the newest'}, then the log replayed to <strong>${p.txn ? `${p.txn.included ? 'the end of' : 'just before'} transaction ${p.txn.number}` : p.time ? `${p.time.replace('T', ' ')}` : 'its end'}</strong>`
    : html`backup <span class="mono" data-testid="plan-snapshot">${p.snapshot?.id.slice(0, 8) ?? '?'}</span> taken ${p.snapshot ? `${shortTime(p.snapshot.time)} UTC` : ''} (${formatBytes(p.snapshot?.size_bytes)})`;
  return html`<div class="plan" data-testid="plan" data-method="${p.method}">
      <h3>Plan: restore ${p.source} <span class="kind kind-${p.kind}">${p.kind}</span> ${p.txn ? html`<span data-testid="plan-txn">${p.txn.included ? 'up to and including' : 'to just before'} transaction ${p.txn.number}</span>` : p.time ? html`to ${p.time.replace('T', ' ')}` : p.snapshot ? 'from a snapshot' : 'to the latest'}</h3>
      ${p.time ? reach(Date.parse(p.time)) : ''}
      <dl class="plan-grid">
        <dt>What comes back</dt><dd>${what}</dd>
        <dt>Into (new)</dt><dd><input id="recover-target" data-testid="recover-target" class="mono" type="text" spellcheck="false" value="${p.target ?? ''}" placeholder="/restore/root/new-directory">${p.target_suggested ? html`<div class="sub">suggested below the restore roots; change it if you like</div>` : ''}</dd>
        <dt>Expected time</dt><dd>${p.expected_seconds !== null ? `about ${formatSeconds(p.expected_seconds)} (the last passed drill)` : html`<span class="muted">unknown: no passed drill yet</span>`}</dd>
        <dt>Last drill</dt><dd>${p.last_drill ? html`${p.last_drill.ok ? html`<span class="good">passed</span>` : html`<span class="bad">failed</span>`} ${shortTime(p.last_drill.time)} UTC` : html`<span class="never">never drilled</span>`}</dd>
      </dl>
      ${p.notes.length ? html`<ul class="plan-notes">${p.notes.map((n) => html`<li>${n}</li>`)}</ul>` : ''}
      ${blocked ? html`<ul class="plan-problems" data-testid="plan-problems">${p.problems.map((x) => html`<li><strong class="notice-code">${x.code}</strong> ${x.message}${x.hint ? html`<div class="sub">Hint: ${x.hint}</div>` : ''}</li>`)}</ul>` : ''}
      <div class="actions left">
        <button type="button" class="primary" data-action="recover-start" data-testid="recover-start" ${blocked || r.starting || r.planning ? html`disabled` : ''} title="${blocked ? 'see the problems above' : `${p.start.method} ${p.start.url}`}">${r.starting ? 'Starting…' : 'Start recovery'}</button>
        <span class="muted small mono">${p.start.method} ${p.start.url}</span>
      </div>
    </div>`;
}

/** The base a log restore to `time` replays from, as the window's coverage says (the newest stretch reaching it). */
function baseFromWindow(time: string | null): { id: string; time: string } | null {
  const w = r.window;
  if (!w) return null;
  const t = time === null ? Infinity : Date.parse(time);
  const stretch = w.coverage.filter((c) => c.base !== null && Date.parse(c.from) <= t && (time === null || Date.parse(c.to) >= t)).pop();
  const snap = stretch ? w.snapshots.find((s) => s.id === stretch.base) : undefined;
  return snap ? { id: snap.id, time: snap.time } : null;
}

/** A warning when the moment is one the window says no restore reaches exactly. */
function reach(t: number): Safe {
  const m = r.model;
  if (!m || m.estimated) return html``;
  const gap = m.gaps.find((g) => t > g.from && t < g.to);
  if (gap) return html`<p class="plan-warning" data-testid="plan-warning">This moment is in a gap (${shortTime(new Date(gap.from).toISOString())} – ${shortTime(new Date(gap.to).toISOString())} UTC): ${gap.reason}. The restore stops at the last moment before it that can be reached.</p>`;
  if (m.latest !== null && t > m.latest) return html`<p class="plan-warning" data-testid="plan-warning">This moment is after the newest recoverable one (${shortTime(new Date(m.latest).toISOString())} UTC): what happened since is not in the repository.</p>`;
  if (m.earliest !== null && t < m.earliest) return html`<p class="plan-warning" data-testid="plan-warning">This moment is before the earliest recoverable one (${shortTime(new Date(m.earliest).toISOString())} UTC).</p>`;
  return html``;
}

/** The group restore's plan: per member its mechanism, base and target, as `group restore --dry-run` made it. */
function groupPlanMarkup(): Safe {
  if (r.planError) return html`<p class="bad" data-testid="plan-error">${r.planError}</p>`;
  const p = r.groupPlan;
  if (!p) return html`<p class="muted">${r.planning ? 'Planning…' : 'Click a point on the timeline (or a moment: the newest point at or before it), or “Latest”.'}</p>`;
  const dry = (p.plan ?? {}) as { point?: string; time?: string; plan?: Array<Record<string, unknown>>; notes?: string[] };
  const rows = dry.plan ?? [];
  const text = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));
  const blocked = p.problems.length > 0;
  return html`<div class="plan" data-testid="plan" data-method="group">
      <h3>Plan: restore group ${p.group} to point <span class="mono" data-testid="plan-point">${(dry.point ?? p.point ?? '?').slice(0, 12)}</span>${dry.time ? html` (${shortTime(dry.time)} UTC)` : ''}</h3>
      ${rows.length ? html`<table class="table plan-members"><thead><tr><th>Member</th><th>Kind</th><th>Mechanism</th><th>From</th><th>Into (new)</th></tr></thead><tbody>${rows.map((m) => html`<tr data-testid="plan-member" data-member="${text(m.member)}"><td><strong>${text(m.member)}</strong></td><td><span class="kind kind-${text(m.kind)}">${text(m.kind)}</span></td><td>${text(m.mechanism)}</td><td class="mono small">${text(m.base).slice(0, 60)}</td><td class="mono small">${text(m.target)}</td></tr>`)}</tbody></table>` : ''}
      ${[...p.notes, ...(dry.notes ?? [])].length ? html`<ul class="plan-notes">${[...p.notes, ...(dry.notes ?? [])].map((n) => html`<li>${n}</li>`)}</ul>` : ''}
      ${blocked ? html`<ul class="plan-problems" data-testid="plan-problems">${p.problems.map((x) => html`<li><strong class="notice-code">${x.code}</strong> ${x.message}${x.hint ? html`<div class="sub">Hint: ${x.hint}</div>` : ''}</li>`)}</ul>` : ''}
      <div class="actions left">
        <button type="button" class="primary" data-action="recover-start" data-testid="recover-start" ${blocked || r.starting || r.planning ? html`disabled` : ''}>${r.starting ? 'Starting…' : 'Start recovery'}</button>
        <span class="muted small mono">${p.start.method} ${p.start.url}</span>
      </div>
    </div>`;
}

async function start(): Promise<void> {
  const p = r.group !== null ? r.groupPlan : r.plan;
  if (!p || p.problems.length > 0 || r.starting) return;
  r.starting = true;
  rerender();
  try {
    const answer = await ui.api.startRestore(p.start.url, p.start.body);
    // POST /restores answers the job, /recoveries {jobs}, /groups/:name/restore {plan, job}.
    const jobs = 'jobs' in answer ? (answer as Jobs).jobs : 'job' in answer ? [(answer as { job: Job }).job] : [answer as Job];
    r.jobs = jobs;
    ui.info(`Recovery of ${r.group ?? r.source} started (job ${jobs.map((j) => j.id).join(', ')}).`);
    follow();
  } catch (err) {
    ui.report(err, 'action');
  } finally {
    r.starting = false;
    rerender();
  }
}

/** Asks the daemon to cancel a restore started here; following the job shows it end. */
async function cancel(id: string): Promise<void> {
  r.canceling.add(id);
  rerender();
  try {
    await ui.api.cancelJob(id);
    ui.info(`Canceling job ${id}: its process is being stopped.`);
  } catch (err) {
    r.canceling.delete(id);
    ui.report(err, 'action');
    rerender();
  }
}

/** Reads the started jobs until each has ended; then plans again (the target now exists). */
function follow(): void {
  clearTimeout(r.follow);
  const mine = subject();
  r.follow = setTimeout(async () => {
    try {
      const fresh = await Promise.all(r.jobs.map((j) => (isFinished(j) ? j : ui.api.job(j.id))));
      if (subject() !== mine) return;
      r.jobs = fresh;
      rerender();
      if (fresh.some((j) => !isFinished(j))) follow();
      else {
        r.target = undefined;
        void plan();
      }
    } catch (err) {
      ui.report(err, 'poll');
      follow();
    }
  }, FOLLOW_MS);
}

function progressMarkup(): Safe {
  if (r.jobs.length === 0) return html``;
  return html`<div class="progress-list">${r.jobs.map((j) => {
    const p = j.progress ?? {};
    const bytes = typeof p.bytes === 'number' ? p.bytes : null;
    const total = typeof p.total_bytes === 'number' && p.total_bytes > 0 ? p.total_bytes : null;
    const done = j.status === 'succeeded';
    const frac = done ? 1 : bytes !== null && total ? Math.min(1, bytes / total) : null;
    const elapsed = j.duration_ms !== null ? j.duration_ms / 1000 : typeof p.elapsed_seconds === 'number' ? p.elapsed_seconds : null;
    const eta = frac && frac > 0.01 && frac < 1 && elapsed ? ((1 - frac) * elapsed) / frac : null;
    const groupTargets = (j.params.group_restore as { targets?: Record<string, string> } | undefined)?.targets;
    const target = (j.params.restore as { target?: string } | undefined)?.target ?? (groupTargets ? Object.values(groupTargets).join(', ') : undefined);
    return html`<div class="progress-row" data-testid="recover-job" data-job="${j.id}" data-status="${j.status}">
        <div><span class="status status-${j.status}" data-testid="recover-job-status">${j.status}</span> <span class="mono small">${j.id}</span> ${j.kind} of <strong>${j.source ?? ''}</strong>${target ? html` → <span class="mono">${target}</span>` : ''}</div>
        <svg class="progress-bar" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true"><rect class="track" width="100" height="6" rx="3"/><rect class="fill ${j.status}" width="${frac === null ? (j.status === 'running' ? 100 : 0) : Math.max(1, frac * 100)}" height="6" rx="3"/></svg>
        <div class="sub">${[
          typeof p.phase === 'string' && !isFinished(j) ? p.phase : null,
          frac !== null ? `${Math.round(frac * 100)}%` : null,
          bytes !== null ? `${formatBytes(bytes)}${total ? ` of ${formatBytes(total)}` : ''}` : null,
          elapsed !== null ? `${formatSeconds(elapsed)}${isFinished(j) ? '' : ' so far'}` : null,
          eta !== null ? `ETA ${formatSeconds(eta)}` : null,
        ].filter(Boolean).join(' · ')}</div>
        ${isFinished(j) ? '' : html`<div class="actions left"><button type="button" data-action="recover-cancel" data-job="${j.id}" data-testid="recover-cancel" ${r.canceling.has(j.id) ? html`disabled` : ''}>${r.canceling.has(j.id) ? 'Canceling…' : 'Cancel'}</button></div>`}
        ${j.status === 'succeeded' && target ? html`<div class="good" data-testid="recover-done">Restored into ${target}</div>` : ''}
        ${j.status === 'failed' ? html`<div class="bad">${j.error_code ? `${j.error_code}: ` : ''}${j.error ?? ''}${j.error_hint ? html`<div class="sub">Hint: ${j.error_hint}</div>` : ''}</div>` : ''}
      </div>`;
  })}</div>`;
}

/** Handles a click that belongs to this card; false when it does not. */
export function recoverClick(el: Element, event: MouseEvent): boolean {
  const action = (el as HTMLElement).dataset.action;
  if (action === 'pick-time') {
    const svg = el.closest('svg') as SVGSVGElement | null;
    const t = svg ? timeAt(svg, event.clientX) : null;
    // To the millisecond: a log restores to any moment, and a second can hold many transactions.
    if (t !== null) choose({ time: new Date(Math.round(t)).toISOString() });
    return true;
  }
  if (action === 'pick-snapshot') {
    const id = (el as HTMLElement).dataset.snapshot;
    if (id) choose({ snapshot: id });
    return true;
  }
  if (action === 'recover-latest') {
    choose({});
    return true;
  }
  if (action === 'recover-start') {
    void start();
    return true;
  }
  if (action === 'recover-cancel') {
    const id = (el as HTMLElement).dataset.job;
    if (id) void cancel(id);
    return true;
  }
  return false;
}

/** A snapshot picked elsewhere (the snapshot table's "Restore"). */
export function recoverSnapshot(id: string): void {
  choose({ snapshot: id });
  document.querySelector('#recover-card')?.scrollIntoView({ block: 'start' });
}
