/**
 * PKCS#11 key slots (HSMs, smart cards, SoftHSM): a slot's secret is encrypted inside
 * a token by an AES key that never leaves it (C_Encrypt / C_Decrypt, CKM_AES_GCM,
 * 96-bit random IV, 128-bit tag, the slot's public key as associated data). Only the
 * small secret crosses into the token: envelope encryption, as with command slots.
 *
 * Which library is loaded, which token and key are used, and the PIN all come from
 * local options, never from the repository (a forged slot must not make this process
 * load a library of the attacker's choosing). The PIN is read from a file or the
 * environment, never from argv. The binding (pkcs11js, native) is loaded only when a
 * PKCS#11 option is used; docs/dependencies.md says why it was chosen.
 */
import { randomBytes } from 'node:crypto';
import { LifeboatError } from '../errors.js';
import type { SlotOpener, SlotWrapper } from './keyring.js';

type Binding = typeof import('pkcs11js');
type Handle = Buffer;

/** Where the token is: all from local options. */
export interface Pkcs11Options {
  /** Path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  /** Token label (as `softhsm2-util --show-slots` or `pkcs11-tool -L` prints it). */
  token: string;
  /** CKA_LABEL of the AES key (CKO_SECRET_KEY) in the token. */
  keyLabel: string;
  /** User PIN. */
  pin: string;
}

/** The associated data binding a wrapped secret to its slot's public key. */
function aad(publicKey: string): Buffer {
  return Buffer.from(`lifeboat pkcs11 slot\0${publicKey}`);
}

function p11Name(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] ?? String(err) : String(err);
}

/** One logged-in session with the token and the key found by label. */
class TokenSession {
  private constructor(
    private readonly p: Binding,
    private readonly lib: InstanceType<Binding['PKCS11']>,
    private readonly session: Handle,
    private readonly key: Handle,
  ) {}

  static async open(o: Pkcs11Options): Promise<TokenSession> {
    let p: Binding;
    try {
      p = (await import('pkcs11js')).default as unknown as Binding;
    } catch (err) {
      throw new LifeboatError('FAILED', `the PKCS#11 binding (pkcs11js) cannot be loaded: ${p11Name(err)}`, { hint: 'reinstall lifeboat with its native dependencies (npm install needs g++ and make)' });
    }
    const lib = new p.PKCS11();
    try {
      lib.load(o.module);
    } catch (err) {
      throw new LifeboatError('USAGE', `PKCS#11 module ${o.module} cannot be loaded: ${p11Name(err)}`, { hint: 'check --pkcs11-module / LIFEBOAT_PKCS11_MODULE: the path of the token\'s PKCS#11 library (.so)' });
    }
    let initialized = false;
    try {
      lib.C_Initialize();
      initialized = true;
      const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === o.token);
      if (!slot) {
        throw new LifeboatError('USAGE', `no PKCS#11 token labelled "${o.token}" in ${o.module}`, { hint: 'check --pkcs11-token / LIFEBOAT_PKCS11_TOKEN (softhsm2-util --show-slots or pkcs11-tool -L lists the tokens)' });
      }
      const session = lib.C_OpenSession(slot, p.CKF_SERIAL_SESSION);
      try {
        lib.C_Login(session, p.CKU_USER, o.pin);
      } catch (err) {
        const name = p11Name(err);
        lib.C_CloseSession(session);
        if (/CKR_PIN_INCORRECT|CKR_PIN_LEN_RANGE|CKR_PIN_INVALID/.test(name)) {
          throw new LifeboatError('WRONG_PASSWORD', `the PKCS#11 token "${o.token}" refused the PIN (${name})`, { hint: 'check --pkcs11-pin-file / LIFEBOAT_PKCS11_PIN; tokens lock after a few wrong PINs' });
        }
        if (/CKR_PIN_LOCKED/.test(name)) {
          throw new LifeboatError('PERMISSION', `the PKCS#11 token "${o.token}" is locked (${name})`, { hint: 'unlock it with the security officer PIN' });
        }
        throw new LifeboatError('FAILED', `PKCS#11 login to "${o.token}" failed: ${name}`, { hint: 'check the token and its PIN' });
      }
      lib.C_FindObjectsInit(session, [
        { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
        { type: p.CKA_LABEL, value: o.keyLabel },
      ]);
      const found = lib.C_FindObjects(session, 2);
      lib.C_FindObjectsFinal(session);
      if (found.length !== 1) {
        lib.C_Logout(session);
        lib.C_CloseSession(session);
        throw new LifeboatError('USAGE', `${found.length ? 'several secret keys are' : 'no secret key is'} labelled "${o.keyLabel}" in PKCS#11 token "${o.token}"`, {
          hint: 'check --pkcs11-key-label / LIFEBOAT_PKCS11_KEY_LABEL: one AES key with encrypt and decrypt allowed (docs/keys.md)',
        });
      }
      return new TokenSession(p, lib, session, found[0] as Handle);
    } catch (err) {
      if (initialized) lib.C_Finalize();
      if (err instanceof LifeboatError) throw err;
      throw new LifeboatError('FAILED', `PKCS#11 token "${o.token}": ${p11Name(err)}`, { hint: 'check the token with pkcs11-tool -L or softhsm2-util --show-slots' });
    }
  }

  private mech(iv: Buffer, publicKey: string) {
    return { mechanism: this.p.CKM_AES_GCM, parameter: { type: this.p.CK_PARAMS_AES_GCM, iv, aad: aad(publicKey), ivBits: 96, tagBits: 128 } };
  }

  encrypt(plain: Buffer, iv: Buffer, publicKey: string): Buffer {
    this.lib.C_EncryptInit(this.session, this.mech(iv, publicKey), this.key);
    return Buffer.from(this.lib.C_Encrypt(this.session, plain, Buffer.alloc(plain.length + 64)));
  }

  /** Undefined when the token does not authenticate the bytes (another key, another slot). */
  decrypt(sealed: Buffer, iv: Buffer, publicKey: string): { plain?: Buffer; failure?: string } {
    try {
      this.lib.C_DecryptInit(this.session, this.mech(iv, publicKey), this.key);
      return { plain: Buffer.from(this.lib.C_Decrypt(this.session, sealed, Buffer.alloc(sealed.length))) };
    } catch (err) {
      return { failure: p11Name(err) };
    }
  }

  close(): void {
    try {
      this.lib.C_Logout(this.session);
      this.lib.C_CloseSession(this.session);
    } finally {
      this.lib.C_Finalize();
    }
  }
}

/** Wraps a new slot's secret with the token's key (`key add --pkcs11`). */
export function pkcs11Wrapper(o: Pkcs11Options): SlotWrapper {
  return {
    type: 'pkcs11',
    async wrap(secret, publicKey) {
      const t = await TokenSession.open(o);
      try {
        const iv = randomBytes(12);
        const sealed = t.encrypt(secret, iv, publicKey);
        // Read back at once: a token that encrypts but will not decrypt must not get a slot.
        const back = t.decrypt(sealed, iv, publicKey);
        if (!back.plain?.equals(secret)) {
          throw new LifeboatError('FAILED', `PKCS#11 key "${o.keyLabel}" does not decrypt what it encrypted${back.failure ? ` (${back.failure})` : ''}`, { hint: 'the key needs CKA_ENCRYPT and CKA_DECRYPT; nothing was added to the repository' });
        }
        back.plain.fill(0);
        return { type: 'pkcs11', pkcs11: { mechanism: 'CKM_AES_GCM', iv: iv.toString('base64'), tagBits: 128 }, secret: sealed.toString('base64') };
      } finally {
        t.close();
      }
    },
  };
}

/** Opens PKCS#11 slots with the token's key; the token is opened only if there is such a slot. */
export function pkcs11Opener(o: Pkcs11Options): SlotOpener {
  let session: TokenSession | undefined;
  let lastFailure: string | undefined;
  return {
    type: 'pkcs11',
    async unwrap(slot) {
      if (slot.type !== 'pkcs11') return undefined;
      if (slot.pkcs11?.mechanism !== 'CKM_AES_GCM' || slot.pkcs11.tagBits !== 128) {
        lastFailure = `unknown mechanism ${String(slot.pkcs11?.mechanism)}`;
        return undefined;
      }
      const iv = Buffer.from(slot.pkcs11.iv, 'base64');
      if (iv.length !== 12) return undefined;
      session ??= await TokenSession.open(o);
      const r = session.decrypt(Buffer.from(slot.secret, 'base64'), iv, slot.publicKey);
      if (r.failure) lastFailure = r.failure;
      return r.plain;
    },
    noneOpened(n) {
      if (n === 0) {
        return new LifeboatError('WRONG_PASSWORD', 'this repository has no PKCS#11 key slot', {
          hint: 'open it with a password, or add one with `lifeboat key add --pkcs11`; `lifeboat key list` shows the slots',
        });
      }
      return new LifeboatError('WRONG_PASSWORD', `PKCS#11 key "${o.keyLabel}" of token "${o.token}" opened none of the ${n} PKCS#11 key slot${n === 1 ? '' : 's'}${lastFailure ? ` (${lastFailure})` : ''}`, {
        hint: 'check --pkcs11-token and --pkcs11-key-label: the key must be the one the slot was added with',
      });
    },
    async close() {
      session?.close();
      session = undefined;
    },
  };
}
