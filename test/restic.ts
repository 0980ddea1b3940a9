/**
 * restic as an anchor in tests, at a test's cost. restic derives its key from the password
 * with scrypt at parameters calibrated by `init` to take ~0.5 s (N=2^15, r=8, p=7 here),
 * and pays that on every command: 0.45 CPU-s for each one-file backup, most of
 * test/integration/forget.test.ts's CPU. restic has no setting for it, so
 * `cheapResticKey` re-wraps the repository's master key under cheap scrypt parameters,
 * in restic's own format (doc/design.rst, "Keys, Encryption and MAC"):
 *
 *   user key  = scrypt(password, salt, N, r, p, 64): AES-256 key ‖ Poly1305 k ‖ Poly1305 r
 *   sealed    = nonce(16) ‖ AES-256-CTR(key, nonce, data) ‖ Poly1305-AES(k, r, nonce, ciphertext)
 *
 * The key's MAC is checked on the way in with the same Poly1305 as is used on the way out,
 * so a mistake in either shows here, not as restic's "wrong password".
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

/** Little-endian bytes as a number. */
function le(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!);
  return n;
}

/** Poly1305-AES (restic's MAC): r clamped, s = AES-128(k, nonce). */
function poly1305Aes(msg: Buffer, nonce: Buffer, k: Buffer, r: Buffer): Buffer {
  const aes = createCipheriv('aes-128-ecb', k, null).setAutoPadding(false);
  const s = le(Buffer.concat([aes.update(nonce), aes.final()]));
  const rr = le(r) & 0x0ffffffc0ffffffc0ffffffc0fffffffn;
  const p = (1n << 130n) - 5n;
  let h = 0n;
  for (let i = 0; i < msg.length; i += 16) {
    const block = msg.subarray(i, i + 16);
    h = ((h + le(block) + (1n << BigInt(8 * block.length))) * rr) % p;
  }
  let tag = (h + s) & ((1n << 128n) - 1n);
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++, tag >>= 8n) out[i] = Number(tag & 0xffn);
  return out;
}

interface UserKey {
  enc: Buffer;
  k: Buffer;
  r: Buffer;
}

function userKey(password: string, salt: Buffer, N: number, r: number, p: number): UserKey {
  const d = scryptSync(password, salt, 64, { N, r, p, maxmem: 256 * N * r + (1 << 20) });
  return { enc: d.subarray(0, 32), k: d.subarray(32, 48), r: d.subarray(48, 64) };
}

/**
 * Re-wraps the master key of the restic repository at `repo` (one key, `password`) under
 * scrypt N=1024, r=8, p=1, so each later restic command derives it in ~1 ms.
 */
export function cheapResticKey(repo: string, password: string): void {
  const dir = path.join(repo, 'keys');
  const [name, ...more] = readdirSync(dir);
  if (!name || more.length) throw new Error(`expected one key in ${dir}`);
  const file = JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as Record<string, unknown> & { N: number; r: number; p: number; salt: string; data: string };
  const sealed = Buffer.from(file.data, 'base64');
  const nonce = sealed.subarray(0, 16);
  const ct = sealed.subarray(16, sealed.length - 16);
  const old = userKey(password, Buffer.from(file.salt, 'base64'), file.N, file.r, file.p);
  if (!poly1305Aes(ct, nonce, old.k, old.r).equals(sealed.subarray(sealed.length - 16))) throw new Error('restic key: MAC mismatch (wrong password, or Poly1305 here is wrong)');
  const d = createDecipheriv('aes-256-ctr', old.enc, nonce);
  const master = Buffer.concat([d.update(ct), d.final()]);

  const salt = randomBytes(64);
  const cheap = userKey(password, salt, 1024, 8, 1);
  const nonce2 = randomBytes(16);
  const e = createCipheriv('aes-256-ctr', cheap.enc, nonce2);
  const ct2 = Buffer.concat([e.update(master), e.final()]);
  const data = Buffer.concat([nonce2, ct2, poly1305Aes(ct2, nonce2, cheap.k, cheap.r)]);
  const text = JSON.stringify({ ...file, N: 1024, r: 8, p: 1, salt: salt.toString('base64'), data: data.toString('base64') });
  // A key file is named by the SHA-256 of its contents.
  writeFileSync(path.join(dir, createHash('sha256').update(text).digest('hex')), text, { mode: 0o400 });
  rmSync(path.join(dir, name), { force: true });
}
