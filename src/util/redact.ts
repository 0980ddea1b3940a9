/**
 * The one redaction applied to everything Lifeboat writes that someone other than
 * the operator may read: job log lines and job records in the catalog, error messages,
 * the runbook. It hides passwords in connection strings, in the three shapes they
 * come in:
 *   - URL user info:        postgres://user:SECRET@host/db   -> postgres://user:***@host/db
 *   - URL query parameters: ...?password=SECRET&sslmode=...  -> ...?password=***&sslmode=...
 *   - libpq key=value:      host=h password=SECRET / password='a b' -> password=***
 * Everything else is left as it was (names, paths, `password_file: /etc/x`).
 * Imports nothing else from src/.
 */

const MASK = '***';

/** scheme://user:SECRET@ — the secret runs to the last '@' before whitespace or a quote. */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@'"]*:)[^\s'"]*@/gi;
/** ?password=SECRET or &sslpassword=SECRET in a URL. */
const QUERY_PARAM = /([?&](?:ssl)?password=)[^&#\s'"]*/gi;
/** password=SECRET or password = 'SE CRET' (libpq quoting: \' and \\ inside quotes). */
const KEY_VALUE = /(^|[\s;,])((?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s'"&]+)/gi;

export function redact(text: string): string {
  if (!/password|:\/\//i.test(text)) return text;
  return text.replace(URL_USERINFO, `$1${MASK}@`).replace(QUERY_PARAM, `$1${MASK}`).replace(KEY_VALUE, `$1$2${MASK}`);
}

/** The same over every string inside a JSON-like value (job results, params). */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map(redactDeep) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactDeep(v)])) as T;
  }
  return value;
}
