/**
 * The Lifeboat dashboard: browser TypeScript compiled by tsc (tsconfig.web.json) to
 * ES modules the daemon serves under /dashboard/, no bundler, no libraries. It signs
 * in with an API token, polls the REST API every 2 seconds, and starts backups,
 * drills and recoveries with the same calls the CLI and scripts make; it also
 * browses a snapshot and downloads one file of it (recover.ts, browse.ts).
 */
import { Api, ApiError } from './api.js';
import { browse, browseClick, closeBrowser, initBrowse } from './browse.js';
import { initRecover, recoverClick, recoverGroup, recoverSelect, recoverSnapshot, recoverSource, renderRecover } from './recover.js';
import { chartMarkup } from './chart.js';
import { $, html } from './html.js';
import { initialState, isFinished } from './state.js';
import { renderDrills, renderGroups, renderJobs, renderSnapshots, renderSources, renderStatus } from './tables.js';

const TOKEN_KEY = 'lifeboat.token';
const POLL_MS = 2000;
/** Every this many polls, backups and drills are read again even if no job finished. */
const FULL_EVERY = 15;
const INFO_NOTICE_MS = 6000;
const JOBS_SHOWN = 20;

const state = initialState();
const api = new Api(() => state.token);

// --- notices ----------------------------------------------------------------

interface Notice {
  code?: string;
  message: string;
  hint?: string | null;
}

/** Shows a message in the notice area; origin "poll" notices clear when polling recovers. */
function showNotice(kind: 'info' | 'error', parts: Notice, origin: 'poll' | 'action' = 'action'): void {
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

function hideNotice(): void {
  clearTimeout(state.noticeTimer);
  const el = $('#notice');
  el.hidden = true;
  el.innerHTML = '';
  state.noticeOrigin = null;
}

/** Reports a failed call: 401 ends the session, anything else goes to the notice area. */
function report(err: unknown, origin: 'poll' | 'action'): void {
  if (err instanceof ApiError && err.status === 401) {
    toSignIn(`Signed out: ${err.message}. Sign in with a valid token.`);
    return;
  }
  const refused = err instanceof ApiError && err.status === 403;
  const message = err instanceof Error ? err.message : String(err);
  showNotice('error', {
    code: err instanceof ApiError ? err.code : 'ERROR',
    message: refused ? `Refused: ${message}` : message || String(err),
    hint: err instanceof ApiError ? err.hint : null,
  }, origin);
}

// --- sign-in ----------------------------------------------------------------

function toSignIn(message: string): void {
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
  msg.textContent = message;
  msg.classList.toggle('error', Boolean(message));
  const input = $<HTMLInputElement>('#token');
  input.value = '';
  input.focus();
}

function toDashboard(): void {
  $('#signin').hidden = true;
  $('#signin-message').textContent = '';
  $('#dashboard').hidden = false;
  $('#session').hidden = false;
  startPolling();
}

async function signIn(event: Event): Promise<void> {
  event.preventDefault();
  const input = $<HTMLInputElement>('#token');
  const token = input.value.trim();
  const msg = $('#signin-message');
  if (!token) return;
  const button = $<HTMLButtonElement>('#signin-form button');
  button.disabled = true;
  msg.textContent = 'Checking the token…';
  msg.classList.remove('error');
  state.token = token;
  try {
    state.status = await api.status();
    localStorage.setItem(TOKEN_KEY, token);
    input.value = '';
    toDashboard();
  } catch (err) {
    state.token = null;
    msg.classList.add('error');
    const why = err instanceof Error ? err.message : String(err);
    msg.textContent = err instanceof ApiError && err.status === 401 ? `That token was not accepted: ${why}.` : `Cannot sign in: ${why}`;
  } finally {
    button.disabled = false;
  }
}

function signOut(): void {
  toSignIn('Signed out.');
  $('#signin-message').classList.remove('error');
}

function resetData(): void {
  Object.assign(state, { sources: [], groups: [], jobs: [], backups: [], backupsFor: null, drills: [], status: null, selected: null, finishedKey: '' });
  for (const id of ['sources-body', 'groups-body', 'jobs-body', 'snapshots-body', 'drills-body']) $(`#${id}`).innerHTML = '';
  $('#chart').innerHTML = '';
  closeBrowser();
  recoverSelect(state);
}

// --- polling ----------------------------------------------------------------

function startPolling(): void {
  stopPolling();
  const generation = state.generation;
  const loop = async (n: number): Promise<void> => {
    await refresh(n % FULL_EVERY === 0);
    if (generation !== state.generation) return;
    state.timer = setTimeout(() => void loop(n + 1), POLL_MS);
  };
  void loop(0);
}

function stopPolling(): void {
  state.generation++;
  clearTimeout(state.timer);
}

/** Reads status, sources and jobs; backups and drills too when a job finished (or `full`). */
async function refresh(full: boolean): Promise<void> {
  const generation = state.generation;
  const seq = ++state.requestSeq;
  try {
    const [status, sources, groups, jobs] = await Promise.all([api.status(), api.sources(), api.groups(), api.jobs(JOBS_SHOWN)]);
    const finishedKey = jobs.filter(isFinished).map((j) => `${j.id}:${j.status}`).join(',');
    const changed = finishedKey !== state.finishedKey;
    const selected = pickSelected(sources);
    const [drills, backups] = full || changed || selected !== state.backupsFor
      ? await Promise.all([api.drills(), selected ? api.backups(selected) : []])
      : [state.drills, state.backups];
    if (generation !== state.generation || seq < state.renderedSeq) return;
    // The user picked another source while this poll ran: its answer is on the way.
    if (selected !== pickSelected(sources)) return;
    state.renderedSeq = seq;
    Object.assign(state, { status, sources, groups, jobs, drills, backups, backupsFor: selected, selected, finishedKey });
    renderAll();
    markUpdated(true);
    if (state.noticeOrigin === 'poll') hideNotice();
  } catch (err) {
    if (generation !== state.generation) return;
    markUpdated(false);
    report(err, 'poll');
  }
}

function pickSelected(sources: ReadonlyArray<{ name: string }>): string | null {
  if (state.selected && sources.some((s) => s.name === state.selected)) return state.selected;
  return sources[0]?.name ?? null;
}

async function select(name: string): Promise<void> {
  if (name === state.selected) {
    recoverSource(state);
    renderRecover(state);
    return;
  }
  state.selected = name;
  closeBrowser();
  recoverSource(state);
  renderSources(state);
  renderSnapshots(state);
  renderChart();
  try {
    const backups = await api.backups(name);
    if (state.selected !== name) return;
    state.backups = backups;
    state.backupsFor = name;
    renderSnapshots(state);
    renderChart();
    renderRecover(state);
  } catch (err) {
    report(err, 'action');
  }
}

function markUpdated(ok: boolean): void {
  const el = $('#updated');
  el.classList.toggle('stale', !ok);
  el.textContent = ok ? `Updated ${new Date().toISOString().slice(11, 19)} UTC` : 'Update failed, retrying…';
}

// --- actions ----------------------------------------------------------------

/** Runs a POST for a button, shows what happened, and polls at once so the job appears. */
async function act<T>(key: string, call: () => Promise<T>, describe: (result: T) => string): Promise<void> {
  state.pending.add(key);
  renderSources(state);
  renderGroups(state);
  try {
    const result = await call();
    showNotice('info', { message: describe(result) });
    await refresh(false);
  } catch (err) {
    report(err, 'action');
  } finally {
    state.pending.delete(key);
    renderSources(state);
    renderGroups(state);
  }
}

function backupNow(source: string): Promise<void> {
  return act(`backup:${source}`, () => api.backupNow(source), (job) => `Backup of ${source} started (job ${job.id}).`);
}

function captureGroup(group: string): Promise<void> {
  return act(`group-backup:${group}`, () => api.groupBackup(group), (job) => `Capture of group ${group} started (job ${job.id}).`);
}

function runDrill(source: string): Promise<void> {
  return act(`drill:${source}`, () => api.drill(source), (r) => `Drill of ${source} started (job ${r.jobs.map((j) => j.id).join(', ')}).`);
}

// --- rendering --------------------------------------------------------------

function renderChart(): void {
  const name = state.selected;
  $('#chart-title').textContent = name ? `Backup size and duration: ${name}` : 'Backup size and duration';
  $('#chart').innerHTML = chartMarkup(name, state.backups, state.backupsFor === name).markup;
}

function renderAll(): void {
  renderStatus(state);
  renderSources(state);
  renderGroups(state);
  renderSnapshots(state);
  renderChart();
  recoverSelect(state);
  renderRecover(state);
  renderJobs(state);
  renderDrills(state);
}

// --- wiring -----------------------------------------------------------------

function onClick(event: MouseEvent): void {
  if (!(event.target instanceof Element)) return;
  const button = event.target.closest<HTMLElement>('[data-action]');
  if (button && (recoverClick(button, event) || browseClick(button))) return;
  if (button) {
    const source = button.dataset.source ?? '';
    if (button.dataset.action === 'backup') void backupNow(source);
    else if (button.dataset.action === 'drill') void runDrill(source);
    else if (button.dataset.action === 'group-backup') void captureGroup(button.dataset.group ?? '');
    else if (button.dataset.action === 'select') void select(source);
    else if (button.dataset.action === 'dismiss') hideNotice();
    else if (button.dataset.action === 'restore-snapshot') {
      recoverSource(state);
      recoverSnapshot(button.dataset.snapshot ?? '');
    } else if (button.dataset.action === 'recover-group') recoverGroup(button.dataset.group ?? '', state);
    else if (button.dataset.action === 'browse') browse(button.dataset.repository ?? '', button.dataset.snapshot ?? '', button.dataset.time ?? '');
    return;
  }
  const row = event.target.closest<HTMLElement>('#sources-body tr[data-source]');
  if (row?.dataset.source) void select(row.dataset.source);
}

function init(): void {
  const ui = { api, report, info: (message: string) => showNotice('info', { message }) };
  initRecover(ui);
  initBrowse(ui);
  document.addEventListener('click', onClick);
  $('#signin-form').addEventListener('submit', (e) => void signIn(e));
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
