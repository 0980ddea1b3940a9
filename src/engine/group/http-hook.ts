/**
 * A freeze or thaw as an HTTP request (docs/groups.md): `{ http: { url, method,
 * headers_file, timeout } }`. The request carries `{"group", "point", "action"}` as
 * JSON; any 2xx answer is success, everything else (a redirect too: it is not
 * followed) a failure. Headers come from a file read before the freeze, so a token is
 * never in lifeboat.yaml, on argv or in a message: errors name the URL's origin only.
 *
 * A request cut off by its limit is only abandoned on our side: the application must
 * bound its own hold (as with a command, whose process group is killed).
 */
import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { HttpHook } from '../../config/config.js';
import { LifeboatError, errno } from '../../errors.js';
import type { HookRun } from './hook.js';

/** A headers file is a few lines; anything larger is not one. */
const MAX_HEADERS_FILE = 64 * 1024;
/** How much of a failed answer's body is kept for the error (its last line is shown). */
const BODY_TAIL = 2048;

export type HttpHookRunner = (action: 'freeze' | 'thaw', point: string, limitMs: number) => Promise<HookRun>;

/** Where a request goes, for messages: the origin, never the path or query (they may hold a token). */
export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(bad URL)';
  }
}

/** Reads the headers file now (before anything is held) and returns the request to make later. */
export function prepareHttpHook(h: HttpHook, cwd: string, group: string): HttpHookRunner {
  const headers: Record<string, string> = {};
  if (h.headersFile !== undefined) {
    const file = path.resolve(cwd, h.headersFile);
    let text: string;
    try {
      if (statSync(file).size > MAX_HEADERS_FILE) throw new LifeboatError('USAGE', `headers_file ${file} of group "${group}" is larger than 64 KiB`, { hint: 'it holds "Name: value" lines' });
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if (err instanceof LifeboatError) throw err;
      throw new LifeboatError(errno(err) === 'EACCES' ? 'PERMISSION' : 'USAGE', `cannot read headers_file ${file} of group "${group}": ${errno(err) ?? String(err)}`, { hint: 'give a file of "Name: value" lines readable by this user' });
    }
    text.split(/\r?\n/).forEach((line, i) => {
      if (line.trim() === '' || line.trimStart().startsWith('#')) return;
      const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*(.*?)\s*$/.exec(line);
      // The line itself may be a secret: only its number is named.
      if (!m) throw new LifeboatError('USAGE', `headers_file ${file} of group "${group}": line ${i + 1} is not "Name: value"`, { hint: 'one header a line, e.g. Authorization: Bearer ...' });
      headers[m[1] as string] = m[2] as string;
    });
  }
  const where = `${h.method} ${originOf(h.url)}`;
  return async (action, point, limitMs) => {
    const limit = Math.max(1, Math.min(limitMs, h.timeoutMs ?? limitMs));
    const signal = AbortSignal.timeout(limit);
    try {
      const res = await fetch(h.url, {
        method: h.method,
        headers: { ...headers, ...(h.method === 'GET' || h.method === 'DELETE' ? {} : { 'content-type': 'application/json' }) },
        ...(h.method === 'GET' || h.method === 'DELETE' ? {} : { body: JSON.stringify({ group, point, action }) }),
        redirect: 'manual',
        signal,
      });
      const body = (await res.text()).slice(-BODY_TAIL).trim();
      const ok = res.status >= 200 && res.status < 300;
      return { ok, timedOut: false, outcome: `${where} answered HTTP ${res.status}`, said: ok ? '' : (body.split('\n').at(-1) ?? '') };
    } catch (err) {
      if (signal.aborted) return { ok: false, timedOut: true, outcome: `got no answer from ${where} within ${limit} ms`, said: '' };
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      return { ok: false, timedOut: false, outcome: `${where}: could not connect (${cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err))})`, said: '' };
    }
  };
}
