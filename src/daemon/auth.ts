/**
 * API tokens: random 256-bit secrets shown once, stored as their SHA-256. A token
 * this long cannot be guessed, so a fast hash is enough (a password hash such as
 * scrypt is for secrets people choose); the lookup is by hash, so no comparison of
 * secrets leaks timing. Roles are ordered: viewer < operator < admin. Names are
 * unique among active tokens, so "revoke NAME" means one token; a token may expire.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { LifeboatError } from '../errors.js';
import { tokenExpires } from '../config/model.js';
import { parseOptionValue } from '../config/schema.js';
import { after, type Duration } from '../util/duration.js';
import type { Catalog, TokenRow } from './catalog.js';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function parseRole(text: string): Role {
  if (!(ROLES as readonly string[]).includes(text)) {
    throw new LifeboatError('USAGE', `"${text}" is not a role`, { hint: 'roles: viewer (read), operator (also run backups, restores, drills), admin (also tokens, audit, retention)' });
  }
  return text as Role;
}

export function allows(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * When a token given `--expires 30d` expires (ISO time), or undefined for none. The
 * CLI flag and the API body both come here: one grammar, one meaning (a calendar
 * month for `1mo`, util/duration.ts).
 */
export function expiryOf(expires: string | Duration | undefined, now = Date.now()): string | undefined {
  if (expires === undefined) return undefined;
  const d = typeof expires === 'string' ? parseOptionValue(tokenExpires(), expires, `"${expires}" is not a token lifetime:`) : expires;
  return d === undefined || d === 'never' ? undefined : new Date(after(d, now)).toISOString();
}

export function createToken(catalog: Catalog, role: Role, name: string, expires?: string | Duration): { id: string; token: string; expires_at: string | null } {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/.test(name)) throw new LifeboatError('USAGE', `"${name}" is not a valid token name`, { hint: 'letters, digits, ".", "_", "@", "-"' });
  const expiresAt = expiryOf(expires);
  const id = randomBytes(6).toString('hex');
  const token = `lbt_${id}_${randomBytes(32).toString('base64url')}`;
  if (!catalog.addToken({ id, name, role, hash: hashToken(token), expiresAt })) {
    throw new LifeboatError('TOKEN_EXISTS', `an active token is already named "${name}"`, { hint: `names say who holds a token: pick another, or revoke the old one first (\`lifeboat token revoke ${name}\`)` });
  }
  return { id, token, expires_at: expiresAt ?? null };
}

/** Revokes one token by id or name; NOT_FOUND or USAGE (several of one name) otherwise. */
export function revokeToken(catalog: Catalog, idOrName: string): TokenRow {
  const r = catalog.revokeToken(idOrName);
  if (r.ambiguous) {
    throw new LifeboatError('USAGE', `${r.ambiguous.length} active tokens are named "${idOrName}"; nothing was revoked`, { hint: `revoke one by id: ${r.ambiguous.map((t) => t.id).join(', ')}` });
  }
  if (!r.revoked) throw new LifeboatError('NOT_FOUND', `no active token "${idOrName}"`, { hint: '`lifeboat token list` (or GET /api/v1/tokens) shows them' });
  return r.revoked;
}

export type Authenticated = { token: TokenRow & { role: Role } } | { expired: TokenRow } | undefined;

/** The token an Authorization: Bearer header carries, if it is valid and not revoked; an expired one is named as such. */
export function authenticate(catalog: Catalog, header: string | undefined, now = Date.now()): Authenticated {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return undefined;
  const row = catalog.tokenByHash(hashToken(m[1] as string));
  if (!row) return undefined;
  if (row.expires_at && Date.parse(row.expires_at) <= now) return { expired: row };
  catalog.touchToken(row.id);
  return { token: row as TokenRow & { role: Role } };
}

/** Whether the header carries exactly this secret (server.metrics_token); compared as hashes in constant time. */
export function bearerIs(header: string | undefined, secret: string): boolean {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return false;
  return timingSafeEqual(Buffer.from(hashToken(m[1] as string), 'hex'), Buffer.from(hashToken(secret), 'hex'));
}
