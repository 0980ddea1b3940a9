/*
 * The Lifeboat dashboard: plain browser JavaScript, no build step, no libraries.
 * It reads the daemon's REST API (/api/v1) with the user's bearer token, the same
 * calls the CLI and scripts make, so it can do nothing a token could not do anyway.
 * Every value from the API is escaped before it reaches the page (html`` below).
 */
'use strict';

(() => {
  // --- settings ---------------------------------------------------------------

  /** The API, relative to this page (/dashboard/), so a path prefix in a reverse proxy still works. */
  const API = new URL('../api/v1/', window.location.href);
  const TOKEN_KEY = 'lifeboat.token';
  const POLL_MS = 2000;
  /** Every this many polls, backups and drills are read again even if no job finished. */
  const FULL_EVERY = 15;
  const INFO_NOTICE_MS = 6000;

  const state = {
    token: null,
    sources: [],
    jobs: [],
    backups: [],
    /** The source `backups` belongs to. */
    backupsFor: null,
    drills: [],
    status: null,
    selected: null,
    /** Actions whose POST has not answered yet: "backup:docs". */
    pending: new Set(),
    /** Finished jobs seen by the last poll; a change means backups or drills may have changed. */
    finishedKey: '',
    generation: 0,
    timer: null,
    requestSeq: 0,
    renderedSeq: 0,
    noticeTimer: null,
    noticeOrigin: null,
  };

  // --- escaping and markup ----------------------------------------------------

  /** Markup that is already safe; anything else interpolated into html`` is escaped. */
  class Safe {
    constructor(markup) {
      this.markup = markup;
    }
    toString() {
      return this.markup;
    }
  }

  const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

  function esc(value) {
    return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]);
  }

  function piece(value) {
    if (value instanceof Safe) return value.markup;
    if (Array.isArray(value)) return value.map(piece).join('');
    if (value === null || value === undefined || value === false) return '';
    return esc(value);
  }

  /** Tagged template: html`<td>${text}</td>` escapes text; nested html`` stays markup. */
  function html(strings, ...values) {
    let out = strings[0];
    for (let i = 0; i < values.length; i++) out += piece(values[i]) + strings[i + 1];
    return new Safe(out);
  }

  const $ = (selector) => document.querySelector(selector);

  // --- formatting -------------------------------------------------------------

  function isoTime(value) {
    const t = Date.parse(value);
    return Number.isNaN(t) ? String(value) : new Date(t).toISOString();
  }

  /** "2026-11-21 20:01:37" (UTC), or an em dash. */
  function shortTime(value) {
    if (!value) return '—';
    const t = Date.parse(value);
    if (Number.isNaN(t)) return String(value);
    return new Date(t).toISOString().slice(0, 19).replace('T', ' ');
  }

  function timeCell(value) {
    if (!value) return html`<span class="muted">—</span>`;
    return html`<time datetime="${isoTime(value)}" title="${isoTime(value)}">${shortTime(value)}</time>`;
  }

  function formatBytes(n) {
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
  function formatSeconds(s) {
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

  /** A target in seconds, as written in lifeboat.yaml: "1h", "10m", "90s". */
  function formatTarget(s) {
    if (s === null || s === undefined) return null;
    if (s % 86400 === 0) return `${s / 86400}d`;
    if (s % 3600 === 0) return `${s / 3600}h`;
    if (s % 60 === 0) return `${s / 60}m`;
    return `${s}s`;
  }

  function ago(value) {
    const t = Date.parse(value);
    if (Number.isNaN(t)) return '';
    const s = (Date.now() - t) / 1000;
    if (s < 5) return 'just now';
    return `${formatSeconds(s)} ago`;
  }

  // --- the API ----------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || `the daemon answered HTTP ${status}`);
      this.status = status;
      this.code = e.code || `HTTP_${status}`;
      this.hint = e.hint || null;
    }
  }

  /** Calls the API with the token; resolves to the parsed body, rejects with an ApiError. */
  async function api(path, options = {}) {
    const headers = { accept: 'application/json', authorization: `Bearer ${state.token}` };
    const init = { method: options.method || 'GET', headers, cache: 'no-store' };
    // No content-type without a body: fastify refuses an empty application/json body.
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    let res;
    try {
      res = await fetch(new URL(path, API), init);
    } catch {
      throw new ApiError(0, { error: { code: 'UNREACHABLE', message: 'cannot reach the Lifeboat daemon', hint: 'is `lifeboat serve` running? The dashboard keeps trying.' } });
    }
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!res.ok) throw new ApiError(res.status, body);
    return body;
  }

  // --- notices ----------------------------------------------------------------

  /** Shows a message in the notice area; origin "poll" notices clear when polling recovers. */
  function showNotice(kind, parts, origin = 'action') {
    const el = $('#notice');
    clearTimeout(state.noticeTimer);
    el.className = `notice ${kind}`;
    el.innerHTML = html`
      <div class="notice-body">
        ${parts.code ? html`<strong class="notice-code">${parts.code}</strong>` : ''}
        <span class="notice-message">${parts.message}</span>
        ${parts.hint ? html`<div class="notice-hint">Hint: ${parts.hint}</div>` : ''}
      </div>
      <button type="button" class="notice-close" data-action="dismiss" aria-label="Dismiss">×</button>`.markup;
    el.hidden = false;
    state.noticeOrigin = origin;
    if (kind === 'info') state.noticeTimer = setTimeout(hideNotice, INFO_NOTICE_MS);
  }

  function hideNotice() {
    clearTimeout(state.noticeTimer);
    const el = $('#notice');
    el.hidden = true;
    el.innerHTML = '';
    state.noticeOrigin = null;
  }

  /** Reports a failed call: 401 ends the session, anything else goes to the notice area. */
  function report(err, origin) {
    if (err instanceof ApiError && err.status === 401) {
      toSignIn(`Signed out: ${err.message}. Sign in with a valid token.`);
      return;
    }
    const refused = err instanceof ApiError && err.status === 403;
    showNotice('error', {
      code: err.code || 'ERROR',
      message: refused ? `Refused: ${err.message}` : err.message || String(err),
      hint: err.hint,
    }, origin);
  }

  // --- sign-in ----------------------------------------------------------------

  function toSignIn(message) {
    stopPolling();
    state.token = null;
    localStorage.removeItem(TOKEN_KEY);
    resetData();
    hideNotice();
    $('#dashboard').hidden = true;
    $('#session').hidden = true;
    $('#daemon-status').hidden = true;
    $('#signin').hidden = false;
    const msg = $('#signin-message');
    msg.textContent = message || '';
    msg.classList.toggle('error', Boolean(message));
    $('#token').value = '';
    $('#token').focus();
  }

  function toDashboard() {
    $('#signin').hidden = true;
    $('#signin-message').textContent = '';
    $('#dashboard').hidden = false;
    $('#session').hidden = false;
    startPolling();
  }

  async function signIn(event) {
    event.preventDefault();
    const token = $('#token').value.trim();
    const msg = $('#signin-message');
    if (!token) return;
    const button = $('#signin-form button');
    button.disabled = true;
    msg.textContent = 'Checking the token…';
    msg.classList.remove('error');
    state.token = token;
    try {
      state.status = await api('status');
      localStorage.setItem(TOKEN_KEY, token);
      $('#token').value = '';
      toDashboard();
    } catch (err) {
      state.token = null;
      msg.classList.add('error');
      msg.textContent = err instanceof ApiError && err.status === 401 ? `That token was not accepted: ${err.message}.` : `Cannot sign in: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  }

  function signOut() {
    toSignIn('Signed out.');
    $('#signin-message').classList.remove('error');
  }

  function resetData() {
    Object.assign(state, { sources: [], jobs: [], backups: [], backupsFor: null, drills: [], status: null, selected: null, finishedKey: '' });
    for (const id of ['sources-body', 'jobs-body', 'snapshots-body', 'drills-body']) $(`#${id}`).innerHTML = '';
    $('#chart').innerHTML = '';
  }

  // --- polling ----------------------------------------------------------------

  function startPolling() {
    stopPolling();
    const generation = state.generation;
    const loop = async (n) => {
      await refresh(n % FULL_EVERY === 0);
      if (generation !== state.generation) return;
      state.timer = setTimeout(() => loop(n + 1), POLL_MS);
    };
    void loop(0);
  }

  function stopPolling() {
    state.generation++;
    clearTimeout(state.timer);
  }

  const isFinished = (job) => job.status !== 'running' && job.status !== 'queued';

  /** Reads status, sources and jobs; backups and drills too when a job finished (or `full`). */
  async function refresh(full) {
    const generation = state.generation;
    const seq = ++state.requestSeq;
    try {
      const [status, sources, jobs] = await Promise.all([api('status'), api('sources'), api('jobs?limit=20')]);
      const finishedKey = jobs.filter(isFinished).map((j) => `${j.id}:${j.status}`).join(',');
      const changed = finishedKey !== state.finishedKey;
      const selected = pickSelected(sources);
      const [drills, backups] = full || changed || selected !== state.backupsFor
        ? await Promise.all([api('drills'), selected ? api(`backups?source=${encodeURIComponent(selected)}`) : []])
        : [state.drills, state.backups];
      if (generation !== state.generation || seq < state.renderedSeq) return;
      // The user picked another source while this poll ran: its answer is on the way.
      if (selected !== pickSelected(sources)) return;
      state.renderedSeq = seq;
      Object.assign(state, { status, sources, jobs, drills, backups, backupsFor: selected, selected, finishedKey });
      renderAll();
      markUpdated(true);
      if (state.noticeOrigin === 'poll') hideNotice();
    } catch (err) {
      if (generation !== state.generation) return;
      markUpdated(false);
      report(err, 'poll');
    }
  }

  function pickSelected(sources) {
    if (state.selected && sources.some((s) => s.name === state.selected)) return state.selected;
    return sources[0] ? sources[0].name : null;
  }

  async function select(name) {
    if (name === state.selected) return;
    state.selected = name;
    renderSources();
    renderSnapshots();
    renderChart();
    try {
      const backups = await api(`backups?source=${encodeURIComponent(name)}`);
      if (state.selected !== name) return;
      state.backups = backups;
      state.backupsFor = name;
      renderSnapshots();
      renderChart();
    } catch (err) {
      report(err, 'action');
    }
  }

  function markUpdated(ok) {
    const el = $('#updated');
    el.classList.toggle('stale', !ok);
    el.textContent = ok ? `Updated ${new Date().toISOString().slice(11, 19)} UTC` : 'Update failed, retrying…';
  }

  // --- actions ----------------------------------------------------------------

  /** Runs a POST for a button, shows what happened, and polls at once so the job appears. */
  async function act(key, call, describe) {
    state.pending.add(key);
    renderSources();
    try {
      const result = await call();
      showNotice('info', { message: describe(result) });
      await refresh(false);
    } catch (err) {
      report(err, 'action');
    } finally {
      state.pending.delete(key);
      renderSources();
    }
  }

  function backupNow(source) {
    return act(`backup:${source}`, () => api(`sources/${encodeURIComponent(source)}/backup`, { method: 'POST' }), (job) => `Backup of ${source} started (job ${job.id}).`);
  }

  function runDrill(source) {
    return act(`drill:${source}`, () => api('drills', { method: 'POST', body: { source } }), (r) => `Drill of ${source} started (job ${r.jobs.map((j) => j.id).join(', ')}).`);
  }

  // --- tables -----------------------------------------------------------------

  /** What each cell was last given, so an unchanged cell is left alone. */
  const cellMarkup = new WeakMap();

  /** A table cell: its markup and optional class. */
  const cell = (content, cls = '') => ({ markup: piece(content), cls });

  /**
   * Brings a tbody to `rows` ([{key, attrs, cells}]) touching only what changed, so a
   * button under the pointer is not replaced by a refresh in the middle of a click.
   */
  function patchRows(tbody, rows) {
    const existing = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
    rows.forEach((row, i) => {
      let tr = existing.get(row.key);
      if (tr) existing.delete(row.key);
      else {
        tr = document.createElement('tr');
        tr.dataset.key = row.key;
      }
      for (const [name, value] of Object.entries(row.attrs || {})) {
        if (value === null || value === undefined) tr.removeAttribute(name);
        else if (tr.getAttribute(name) !== String(value)) tr.setAttribute(name, String(value));
      }
      patchCells(tr, row.cells);
      if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);
    });
    for (const tr of existing.values()) tr.remove();
  }

  function patchCells(tr, cells) {
    cells.forEach((c, i) => {
      const td = tr.children[i] || tr.appendChild(document.createElement('td'));
      if (cellMarkup.get(td) !== c.markup) {
        td.innerHTML = c.markup;
        cellMarkup.set(td, c.markup);
      }
      if (td.className !== c.cls) td.className = c.cls;
    });
    while (tr.children.length > cells.length) tr.lastElementChild.remove();
  }

  function showEmpty(id, empty) {
    $(`#${id}`).hidden = !empty;
  }

  // --- sources ----------------------------------------------------------------

  /** "ok" within target, "over" past it, "unknown" without a value or a target. */
  function against(value, target) {
    if (target === null || target === undefined) return value === null || value === undefined ? 'unknown' : 'none';
    if (value === null || value === undefined) return 'unknown';
    return value <= target ? 'ok' : 'over';
  }

  function meter(value, target, level) {
    if (value === null || value === undefined || !target) return '';
    const pct = Math.max(2, Math.min(100, Math.round((value / target) * 100)));
    // SVG attributes rather than an inline style, so a strict Content-Security-Policy allows it.
    return html`<svg class="meter ${level}" viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true"><title>${Math.round((value / target) * 100)}% of the target</title>
      <rect class="track" width="100" height="6" rx="3"/><rect class="fill" width="${pct}" height="6" rx="3"/></svg>`;
  }

  function lastBackupCell(s) {
    const testid = `last-backup-${s.name}`;
    if (!s.last_backup) return html`<span class="never" data-testid="${testid}">never</span>`;
    const t = s.last_backup.time;
    return html`<time class="mono" data-testid="${testid}" datetime="${isoTime(t)}">${isoTime(t)}</time>
      <div class="sub">${ago(t)} · ${formatBytes(s.last_backup.size_bytes)}${s.failing ? html` · <span class="bad">last run failed</span>` : ''}</div>`;
  }

  function rpoCell(s) {
    // No recoverable data at all counts as over target: there is nothing to restore.
    const level = s.rpo_seconds === null && s.rpo_target_seconds !== null ? 'over' : against(s.rpo_seconds, s.rpo_target_seconds);
    const target = formatTarget(s.rpo_target_seconds);
    return html`<span class="metric ${level}" data-testid="rpo-${s.name}">${s.rpo_seconds === null ? 'nothing recoverable' : formatSeconds(s.rpo_seconds)}</span>
      ${target ? html`<span class="target">/ ${target}</span>` : html`<span class="target">no target</span>`}
      ${meter(s.rpo_seconds, s.rpo_target_seconds, level)}`;
  }

  function rtoCell(s) {
    const level = against(s.rto_seconds, s.rto_target_seconds);
    const target = formatTarget(s.rto_target_seconds);
    const drill = s.last_drill;
    return html`<span class="metric ${level}" data-testid="rto-${s.name}">${s.rto_seconds === null ? 'not measured' : formatSeconds(s.rto_seconds)}</span>
      ${target ? html`<span class="target">/ ${target}</span>` : html`<span class="target">no target</span>`}
      ${meter(s.rto_seconds, s.rto_target_seconds, level)}
      <div class="sub">${drill ? html`last drill ${drill.ok ? html`<span class="good">passed</span>` : html`<span class="bad">failed</span>`} ${ago(drill.time)}` : 'no drill yet'}</div>`;
  }

  // The archive's own verdict (docs/daemon.md): ok, lagging, failing, down or starting.
  const ARCHIVE_BADGE = { ok: ['ok', 'archiving'], lagging: ['lagging', 'lagging'], failing: ['over', 'failing'], down: ['over', 'down'], starting: ['starting', 'starting'] };

  function archiveCell(s) {
    const a = s.archive;
    if (!a) return html`<span class="muted">—</span>`;
    const [cls, label] = ARCHIVE_BADGE[a.state] || ['over', a.state];
    const method = a.method === 'archive_command' ? 'archive_command' : `${a.restarts} restart${a.restarts === 1 ? '' : 's'}`;
    const failures = a.archive_command && a.archive_command.failed_count ? html` · <span class="bad">${a.archive_command.failed_count} failed</span>` : '';
    return html`<span class="badge ${cls}" data-testid="archive-${s.name}" title="${a.hint || ''}">${label}</span>
      <div class="sub">lag ${a.lag_seconds === null ? '—' : formatSeconds(a.lag_seconds)} · ${method}${failures}</div>
      ${a.error ? html`<div class="sub bad" title="${a.hint || a.error}">${a.error}</div>` : ''}`;
  }

  function isRunning(kind, source) {
    return state.jobs.some((j) => j.kind === kind && j.source === source && !isFinished(j));
  }

  function actionButton(action, source, label, busyLabel) {
    const busy = state.pending.has(`${action}:${source}`) || isRunning(action, source);
    return html`<button type="button" class="${action === 'backup' ? 'primary' : 'secondary'}" data-action="${action}" data-source="${source}"
      data-testid="${action}-${source}" ${busy ? html`disabled aria-busy="true"` : ''}>${busy ? busyLabel : label}</button>`;
  }

  function renderSources() {
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
        cell(html`<div class="actions">${actionButton('backup', s.name, 'Back up now', 'Backing up…')}${actionButton('drill', s.name, 'Run drill', 'Drilling…')}</div>`, 'actions-col'),
      ],
    }));
    patchRows($('#sources-body'), rows);
    showEmpty('sources-empty', rows.length === 0);
  }

  // --- snapshots --------------------------------------------------------------

  function renderSnapshots() {
    const name = state.selected;
    $('#snapshots-title').textContent = name ? `Snapshots of ${name}` : 'Snapshots';
    const list = state.backupsFor === name ? state.backups : [];
    $('#snapshots-count').textContent = list.length ? `${list.length} snapshot${list.length === 1 ? '' : 's'}, newest ${ago(list[0].time)}` : '';
    const rows = list.map((b) => ({
      key: b.snapshot_id,
      attrs: { 'data-testid': `snapshot-${b.snapshot_id.slice(0, 8)}` },
      cells: [
        cell(html`<span class="mono" title="${b.snapshot_id}">${b.snapshot_id.slice(0, 8)}</span>`),
        cell(timeCell(b.time)),
        cell(formatBytes(b.size_bytes), 'num'),
        cell(formatBytes(b.added_bytes), 'num'),
        cell(formatSeconds(b.duration_ms / 1000), 'num'),
      ],
    }));
    patchRows($('#snapshots-body'), rows);
    showEmpty('snapshots-empty', Boolean(name) && state.backupsFor === name && rows.length === 0);
  }

  // --- jobs -------------------------------------------------------------------

  function jobDuration(j) {
    if (j.duration_ms !== null && j.duration_ms !== undefined) return formatSeconds(j.duration_ms / 1000);
    if (j.status === 'running' && j.started_at) {
      const elapsed = j.progress && Number.isFinite(j.progress.elapsed_seconds) ? j.progress.elapsed_seconds : (Date.now() - Date.parse(j.started_at)) / 1000;
      return html`<span class="muted">${formatSeconds(elapsed)}…</span>`;
    }
    return html`<span class="muted">—</span>`;
  }

  function jobProgress(p) {
    if (!p) return '';
    const bits = [p.phase, Number.isFinite(p.files) ? `${p.files} files` : null, Number.isFinite(p.bytes) ? formatBytes(p.bytes) : null].filter(Boolean);
    return bits.join(' · ');
  }

  function statusCell(j) {
    const detail = j.status === 'running' ? jobProgress(j.progress) : j.error || '';
    return html`<span class="status status-${j.status}">${j.status}</span>
      ${detail ? html`<div class="sub ${j.status === 'failed' ? 'bad' : ''}" title="${detail}">${j.error_code && j.status === 'failed' ? `${j.error_code}: ` : ''}${detail}</div>` : ''}`;
  }

  function renderJobs() {
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

  function renderDrills() {
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

  // --- the chart --------------------------------------------------------------

  const SIZE_UNITS = [[1, 'B'], [1024, 'KiB'], [1024 ** 2, 'MiB'], [1024 ** 3, 'GiB'], [1024 ** 4, 'TiB']];
  const TIME_UNITS = [[0.001, 'ms'], [1, 's'], [60, 'min'], [3600, 'h']];

  /** Ticks from 0 to a round maximum, in the largest unit not above `max`. */
  function axis(max, units) {
    let [factor, unit] = units[0];
    for (const [f, u] of units) if (max >= f) [factor, unit] = [f, u];
    const top = Math.max(max / factor, 1e-9);
    const rough = top / 4;
    const mag = 10 ** Math.floor(Math.log10(rough));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= rough) || 10 * mag;
    const ticks = [];
    for (let v = 0; v <= top + step * 1e-9; v += step) ticks.push(v);
    if (ticks[ticks.length - 1] < top) ticks.push(ticks[ticks.length - 1] + step);
    const decimals = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
    return {
      max: ticks[ticks.length - 1] * factor,
      ticks: ticks.map((v) => ({ value: v * factor, label: `${Number(v.toFixed(decimals))} ${unit}` })),
    };
  }

  function timeTicks(t0, t1, count) {
    const span = t1 - t0;
    const fmt = (t) => {
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
    return ticks.filter((k, i) => i === 0 || k.label !== ticks[i - 1].label);
  }

  function linePath(points, x, y) {
    return points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p).toFixed(1)}`).join(' ');
  }

  /** Size (left axis) and duration (right axis) of the selected source's backups over time. */
  function renderChart() {
    const el = $('#chart');
    const name = state.selected;
    $('#chart-title').textContent = name ? `Backup size and duration: ${name}` : 'Backup size and duration';
    if (name && state.backupsFor !== name) {
      el.innerHTML = html`<p class="empty">Loading backups of ${name}…</p>`.markup;
      return;
    }
    const points = state.backups
      .map((b) => ({ t: Date.parse(b.time), size: Number(b.size_bytes) || 0, seconds: (Number(b.duration_ms) || 0) / 1000, id: b.snapshot_id }))
      .filter((p) => Number.isFinite(p.t))
      .sort((a, b) => a.t - b.t);
    if (points.length === 0) {
      el.innerHTML = html`<p class="empty">${name ? `No backups of ${name} yet.` : 'No sources.'}</p>`.markup;
      return;
    }
    const W = 600;
    const H = 260;
    const m = { top: 16, right: 70, bottom: 46, left: 74 };
    const iw = W - m.left - m.right;
    const ih = H - m.top - m.bottom;
    // A little room either side, so the first and last points are not on the axes.
    const first = points[0].t;
    const last = points[points.length - 1].t;
    const pad = last > first ? Math.max((last - first) * 0.06, 500) : 30_000;
    const t0 = first - pad;
    const t1 = last + pad;
    const sizeAxis = axis(Math.max(...points.map((p) => p.size)), SIZE_UNITS);
    const timeAxis = axis(Math.max(...points.map((p) => p.seconds)), TIME_UNITS);
    const x = (t) => m.left + ((t - t0) / (t1 - t0)) * iw;
    const ySize = (p) => m.top + ih - (p.size / sizeAxis.max) * ih;
    const yTime = (p) => m.top + ih - (p.seconds / timeAxis.max) * ih;
    const yOf = (v, max) => m.top + ih - (v / max) * ih;
    const xTicks = timeTicks(t0, t1, 5);

    el.innerHTML = html`<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="Backup size and duration over time for ${name}" data-testid="backup-chart">
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
    </svg>`.markup;
  }

  // --- the header -------------------------------------------------------------

  function renderStatus() {
    const s = state.status;
    const el = $('#daemon-status');
    if (!s) {
      el.hidden = true;
      return;
    }
    const next = (s.schedules || []).filter((x) => x.next).sort((a, b) => Date.parse(a.next) - Date.parse(b.next))[0];
    const checks = (s.repositories || []).map((r) => html`<span class="chip" title="${r.last_check ? `last check ${isoTime(r.last_check.time)}` : 'never checked'}">${r.name}: ${r.last_check ? (r.last_check.ok ? html`<span class="good">checked ${ago(r.last_check.time)}</span>` : html`<span class="bad">check failed</span>`) : html`<span class="muted">not checked</span>`}</span>`);
    el.innerHTML = html`<span class="chip">v${s.version}</span>
      <span class="chip">up ${formatSeconds((Date.now() - Date.parse(s.started_at)) / 1000)}</span>
      <span class="chip ${s.running_jobs ? 'running' : ''}">${s.running_jobs} running</span>
      ${next ? html`<span class="chip" title="${isoTime(next.next)}">next: ${next.schedule} ${shortTime(next.next).slice(5)}</span>` : ''}
      ${checks}`.markup;
    el.hidden = false;
  }

  function renderAll() {
    renderStatus();
    renderSources();
    renderSnapshots();
    renderChart();
    renderJobs();
    renderDrills();
  }

  // --- wiring -----------------------------------------------------------------

  function onClick(event) {
    const button = event.target.closest('[data-action]');
    if (button) {
      const source = button.dataset.source;
      if (button.dataset.action === 'backup') void backupNow(source);
      else if (button.dataset.action === 'drill') void runDrill(source);
      else if (button.dataset.action === 'select') void select(source);
      else if (button.dataset.action === 'dismiss') hideNotice();
      return;
    }
    const row = event.target.closest('#sources-body tr[data-source]');
    if (row) void select(row.dataset.source);
  }

  function init() {
    document.addEventListener('click', onClick);
    $('#signin-form').addEventListener('submit', signIn);
    $('#sign-out').addEventListener('click', signOut);
    const saved = localStorage.getItem(TOKEN_KEY);
    if (saved) {
      state.token = saved;
      toDashboard();
    } else {
      toSignIn('');
    }
  }

  init();
})();
