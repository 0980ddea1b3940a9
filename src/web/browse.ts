/**
 * The snapshot browser: one directory of a snapshot at a time (GET
 * /repositories/:name/snapshots/:id/tree), breadcrumbs back up, and one file
 * downloaded (operator role). The token cannot ride on a plain link, so the page asks
 * for a one-use link (…/file-ticket) and hands that to the browser, which streams the
 * file to disk under the name the daemon gives in Content-Disposition.
 */
import type { SnapshotTree } from '../api/dto.js';
import { $, formatBytes, html, shortTime, type Safe } from './html.js';
import type { Ui } from './recover.js';

interface Browse {
  repository: string;
  snapshot: string;
  time: string;
  tree: SnapshotTree | null;
  loading: string | null;
  error: string | null;
}

let b: Browse | null = null;
let ui: Ui;
let seq = 0;
const downloading = new Set<string>();

export function initBrowse(u: Ui): void {
  ui = u;
}

/** Opens the browser on a snapshot's root (or `path`). */
export function browse(repository: string, snapshot: string, time: string, path = '/'): void {
  b = { repository, snapshot, time, tree: null, loading: path, error: null };
  $('#browser-card').hidden = false;
  render();
  void open(path);
  $('#browser-card').scrollIntoView({ block: 'start' });
}

/** The source changed: its snapshots are not the ones shown. */
export function closeBrowser(): void {
  b = null;
  $('#browser-card').hidden = true;
}

async function open(path: string): Promise<void> {
  if (!b) return;
  const mine = ++seq;
  b.loading = path;
  b.error = null;
  render();
  try {
    const tree = await ui.api.tree(b.repository, b.snapshot, path);
    if (mine !== seq || !b) return;
    b.tree = tree;
  } catch (err) {
    if (mine !== seq || !b) return;
    b.error = err instanceof Error ? err.message : String(err);
    ui.report(err, 'action');
  } finally {
    if (mine === seq && b) {
      b.loading = null;
      render();
    }
  }
}

async function download(path: string, size: number): Promise<void> {
  if (!b || downloading.has(path)) return;
  downloading.add(path);
  render();
  try {
    // A one-use link, so that the browser streams the file to disk instead of this page holding it.
    const { url } = await ui.api.fileTicket(b.repository, b.snapshot, path);
    const a = document.createElement('a');
    a.href = url;
    // Empty: the name the daemon gives in Content-Disposition.
    a.setAttribute('download', '');
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    a.remove();
    ui.info(`Downloading ${path} (${formatBytes(size)}) from snapshot ${b.snapshot.slice(0, 8)}: the browser saves it.`);
  } catch (err) {
    ui.report(err, 'action');
  } finally {
    downloading.delete(path);
    render();
  }
}

function crumbs(path: string): Safe {
  const parts = path.split('/').filter(Boolean);
  const links = [html`<button type="button" class="crumb" data-action="browse-dir" data-path="/">/</button>`];
  parts.forEach((p, i) => {
    const to = `/${parts.slice(0, i + 1).join('/')}`;
    links.push(html`${i > 0 ? html`<span class="sep">/</span>` : ''}<button type="button" class="crumb" data-action="browse-dir" data-path="${to}">${p}</button>`);
  });
  return html`<nav class="crumbs" data-testid="browse-crumbs">${links}</nav>`;
}

function render(): void {
  if (!b) return;
  $('#browser-title').textContent = `Snapshot ${b.snapshot.slice(0, 8)}`;
  $('#browser-sub').textContent = `${shortTime(b.time)} UTC · repository ${b.repository}`;
  const t = b.tree;
  const body = !t
    ? html`<p class="muted">${b.error ? html`<span class="bad">${b.error}</span>` : `Reading ${b.loading ?? '/'}…`}</p>`
    : html`${crumbs(t.path)}
      ${b.loading ? html`<p class="muted small">Reading ${b.loading}…</p>` : ''}
      <div class="scroll tall"><table class="table browse" data-testid="browse-table">
        <thead><tr><th>Name</th><th>Type</th><th class="num">Size</th><th>Modified (UTC)</th><th class="actions-col"></th></tr></thead>
        <tbody>${t.type !== 'dir' ? html`<tr><td colspan="5" class="muted">${t.path} is a ${t.type}</td></tr>` : ''}
        ${t.entries.map((e) => html`<tr data-testid="browse-entry" data-name="${e.name}" data-type="${e.type}">
          <td>${e.type === 'dir' ? html`<button type="button" class="link" data-action="browse-dir" data-path="${e.path}">${e.name}/</button>` : html`<span class="mono">${e.name}</span>${e.target !== null ? html` <span class="muted">→ ${e.target}</span>` : ''}`}</td>
          <td>${e.type}</td>
          <td class="num">${e.size === null ? '' : formatBytes(e.size)}</td>
          <td>${e.mtime ? shortTime(e.mtime) : ''}</td>
          <td class="actions-col">${e.type === 'file' ? html`<button type="button" class="secondary" data-action="download" data-path="${e.path}" data-size="${String(e.size ?? 0)}" data-testid="download-${e.name}" ${downloading.has(e.path) ? html`disabled` : ''}>${downloading.has(e.path) ? 'Downloading…' : 'Download'}</button>` : ''}</td>
        </tr>`)}</tbody>
      </table></div>
      ${t.entries.length === 0 && t.type === 'dir' ? html`<p class="empty">Empty directory.</p>` : ''}
      ${t.truncated ? html`<p class="muted small">Only the first ${t.entries.length} entries are listed.</p>` : ''}`;
  $('#browser').innerHTML = body.markup;
}

/** Handles a click that belongs to the browser; false when it does not. */
export function browseClick(el: HTMLElement): boolean {
  const action = el.dataset.action;
  if (action === 'browse-dir') {
    void open(el.dataset.path ?? '/');
    return true;
  }
  if (action === 'download') {
    void download(el.dataset.path ?? '', Number(el.dataset.size ?? 0));
    return true;
  }
  if (action === 'browse-close') {
    closeBrowser();
    return true;
  }
  return false;
}
