/**
 * API tokens: random 256-bit secrets shown once, stored as their SHA-256. A token
 * this long cannot be guessed, so a fast hash is enough (a password hash such as
 * scrypt is for secrets people choose); the lookup is by hash, so no comparison of
 * secrets leaks timing. Roles are ordered: viewer < operator < admin.
 */
import { createHash, randomBytes } from 'node:crypto';
import { LifeboatError } from '../errors.js';
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

export function createToken(catalog: Catalog, role: Role, name: string): { id: string; token: string } {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/.test(name)) throw new LifeboatError('USAGE', `"${name}" is not a valid token name`, { hint: 'letters, digits, ".", "_", "@", "-"' });
  const id = randomBytes(6).toString('hex');
  const token = `lbt_${id}_${randomBytes(32).toString('base64url')}`;
  catalog.addToken({ id, name, role, hash: hashToken(token) });
  return { id, token };
}

/** The token an Authorization: Bearer header carries, if it is valid and not revoked. */
export function authenticate(catalog: Catalog, header: string | undefined): (TokenRow & { role: Role }) | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) return undefined;
  const row = catalog.tokenByHash(hashToken(m[1] as string));
  if (!row) return undefined;
  catalog.touchToken(row.id);
  return row as TokenRow & { role: Role };
}
