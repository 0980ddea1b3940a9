/**
 * Talking to a Redis server: where it is (a redis:// URL that never carries a
 * password), how to log in (a password from a file or the environment, never argv),
 * and a small client that sends commands and reads their replies in order.
 *
 * The replication code takes the connection over once logged in (`detach`): after
 * PSYNC the server sends raw bytes (an RDB, keepalive newlines) between RESP values.
 *
 * Plain TCP and unix sockets are read into one reused buffer (`onread`), so that
 * `pause()` stops reading in the kernel instead of filling Node's stream buffer: the
 * replication link rests between small reads and then takes what piled up in one read
 * (sync.ts). TLS sockets are read as a stream and do not rest.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { LifeboatError, errno } from '../../errors.js';
import { RespError, RespReader, asText, encodeCommand, type RespValue } from './resp.js';

export { PASSWORD_ENV, readRedisPasswordFile, redisPassword } from './password.js';

export interface RedisTarget {
  host: string;
  port: number;
  /** An ACL user (Redis 6+); the password comes from elsewhere. */
  user?: string;
  tls: boolean;
  /** A unix socket to connect to instead of host:port (a private scratch server). */
  socket?: string;
  /** host:port, for messages. */
  display: string;
}


const URL_HINT = 'e.g. redis://127.0.0.1:6379 or redis://backup@cache.internal:6379 (a password goes in password_file or LIFEBOAT_REDIS_PASSWORD)';

/** Reads redis://[user@]host[:port] (rediss:// for TLS). A password in the URL is refused: it would be seen on argv and in logs. */
export function parseRedisUrl(text: string): RedisTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new LifeboatError('USAGE', `"${text.slice(0, 80)}" is not a Redis URL`, { hint: URL_HINT });
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new LifeboatError('USAGE', `"${url.protocol}" is not a Redis URL scheme`, { hint: URL_HINT });
  if (url.password) {
    throw new LifeboatError('USAGE', 'the Redis URL carries a password, which every local user could read on the command line', {
      hint: 'remove it from the URL; give it in password_file (lifeboat.yaml), --redis-password-file, or LIFEBOAT_REDIS_PASSWORD',
    });
  }
  if ((url.pathname && url.pathname !== '/') || url.search || url.hash) {
    throw new LifeboatError('USAGE', `the Redis URL "${text}" names a database or options; a backup takes every database of the server`, { hint: URL_HINT });
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new LifeboatError('USAGE', `the Redis URL "${text}" has no host`, { hint: URL_HINT });
  const port = url.port ? Number(url.port) : 6379;
  const user = url.username ? decodeURIComponent(url.username) : undefined;
  return { host, port, tls: url.protocol === 'rediss:', display: `${url.hostname}:${port}`, ...(user ? { user } : {}) };
}

export interface ConnectOptions {
  password?: string | undefined;
  /** For connecting and for each reply. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** A name for CLIENT SETNAME, so the server's CLIENT LIST shows who we are. */
  clientName?: string;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** The reused read buffer of a plain socket: the most one read takes. */
const READ_BUFFER = 256 << 10;

/** A socket whose bytes go to one replaceable sink (the client's reader, then the replication link's). */
export class Wire {
  sink: (chunk: Buffer) => void = () => undefined;
  /** `pause()` leaves unread bytes in the kernel, so the next read after `resume()` takes all of them at once. */
  readonly pausesInKernel: boolean;
  readonly socket: net.Socket;

  constructor(target: RedisTarget) {
    if (target.tls && !target.socket) {
      this.pausesInKernel = false;
      this.socket = tls.connect({ host: target.host, port: target.port, servername: target.host });
      this.socket.on('data', (chunk: Buffer) => this.sink(chunk));
      return;
    }
    this.pausesInKernel = true;
    const onread = {
      buffer: Buffer.allocUnsafe(READ_BUFFER),
      // The buffer is read into again: what is kept must be a copy.
      callback: (n: number, buf: Uint8Array) => {
        this.sink(Buffer.from(buf.subarray(0, n)));
        return true; // the sink pauses the socket itself when it must
      },
    };
    this.socket = target.socket ? net.connect({ path: target.socket, onread }) : net.connect({ host: target.host, port: target.port, onread });
  }
}

function unreachable(target: RedisTarget, why: string): LifeboatError {
  return new LifeboatError('SOURCE_UNAVAILABLE', `cannot reach Redis at ${target.display}: ${why}`, {
    hint: 'is the server running and listening there (bind, protected-mode, a firewall)?',
  });
}

/** The server refused the login or a command for this user: a setting to fix, not an outage to wait out. */
export class RedisRefusedError extends LifeboatError {}

/** A reply that is an error, as a LifeboatError naming the command. */
export function replyError(target: RedisTarget, command: string, e: RespError): LifeboatError {
  const code = e.message.split(' ')[0] ?? '';
  if (code === 'WRONGPASS' || code === 'NOAUTH' || /invalid password|invalid username-password/i.test(e.message)) {
    return new RedisRefusedError('SOURCE_UNAVAILABLE', `Redis at ${target.display} refused the login: ${e.message}`, {
      hint: code === 'NOAUTH' ? 'it needs a password: give password_file, --redis-password-file or LIFEBOAT_REDIS_PASSWORD' : 'check the password (and the user in the URL)',
    });
  }
  if (code === 'NOPERM') {
    return new RedisRefusedError('SOURCE_UNAVAILABLE', `Redis at ${target.display} does not let this user run ${command}: ${e.message}`, {
      hint: 'the backup user needs +psync +replconf +info +ping (see docs/redis.md)',
    });
  }
  return new LifeboatError('SOURCE_UNAVAILABLE', `Redis at ${target.display} answered ${command} with an error: ${e.message}`);
}

export class RedisConnection {
  private readonly reader = new RespReader();
  private readonly waiting: Array<{ resolve: (v: RespValue) => void; reject: (e: Error) => void }> = [];
  private failure: Error | undefined;
  private detached = false;

  private readonly socket: net.Socket;

  private constructor(
    readonly target: RedisTarget,
    private readonly wire: Wire,
    private readonly timeoutMs: number,
  ) {
    const socket = (this.socket = wire.socket);
    wire.sink = (chunk: Buffer) => {
      if (this.detached) return;
      try {
        this.reader.push(chunk);
        for (let r = this.reader.next(); r; r = this.reader.next()) this.waiting.shift()?.resolve(r.value);
      } catch (err) {
        this.fail(err as Error);
      }
    };
    socket.on('error', (err) => this.fail(unreachable(target, errno(err) ?? err.message)));
    socket.on('close', () => this.fail(unreachable(target, 'the connection was closed')));
  }

  /** Connects and logs in (AUTH, then CLIENT SETNAME when asked). */
  static async open(target: RedisTarget, opts: ConnectOptions = {}): Promise<RedisConnection> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const wire = new Wire(target);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = wire.socket;
      const timer = setTimeout(() => {
        s.destroy();
        reject(unreachable(target, `no connection within ${Math.round(timeoutMs / 1000)} s`));
      }, timeoutMs);
      const onAbort = () => {
        s.destroy();
        reject(new LifeboatError('INTERRUPTED', 'interrupted while connecting to Redis'));
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      s.once(target.tls && !target.socket ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        reject(unreachable(target, errno(err) ?? err.message));
      });
    });
    if (!target.socket) {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 10_000);
    }
    const conn = new RedisConnection(target, wire, timeoutMs);
    try {
      if (opts.password !== undefined) {
        await conn.ok(target.user ? ['AUTH', target.user, opts.password] : ['AUTH', opts.password], 'AUTH');
      } else if (target.user) {
        throw new LifeboatError('USAGE', `the Redis URL names user "${target.user}" but no password was given`, { hint: 'give password_file, --redis-password-file or LIFEBOAT_REDIS_PASSWORD' });
      }
      if (opts.clientName) await conn.ok(['CLIENT', 'SETNAME', opts.clientName], 'CLIENT SETNAME');
    } catch (err) {
      conn.close();
      throw err;
    }
    return conn;
  }

  /** Sends a command; resolves with its reply (an error reply is a RespError value, not a rejection). */
  call(args: ReadonlyArray<string | Buffer | number>): Promise<RespValue> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.detached) return Promise.reject(new Error('RedisConnection.call after detach'));
    return new Promise<RespValue>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(unreachable(this.target, `no reply within ${Math.round(this.timeoutMs / 1000)} s`)), this.timeoutMs);
      this.waiting.push({
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(encodeCommand(args));
    });
  }

  /** Sends a command and returns its reply; an error reply throws (SOURCE_UNAVAILABLE naming `what`). */
  async ok(args: ReadonlyArray<string | Buffer | number>, what = String(args[0])): Promise<RespValue> {
    const v = await this.call(args);
    if (v instanceof RespError) throw replyError(this.target, what, v);
    return v;
  }

  /** INFO [section] as a map of its `key:value` lines. */
  async info(section?: string): Promise<Map<string, string>> {
    const v = await this.ok(section ? ['INFO', section] : ['INFO'], 'INFO');
    const text = asText(v) ?? '';
    const out = new Map<string, string>();
    for (const line of text.split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i > 0 && !line.startsWith('#')) out.set(line.slice(0, i), line.slice(i + 1));
    }
    return out;
  }

  /**
   * Hands the socket over (replication): no more replies are read here. `reader` holds
   * whatever arrived after the last reply; the caller sets the wire's sink.
   */
  detach(): { wire: Wire; reader: RespReader } {
    if (this.waiting.length > 0) throw new Error('RedisConnection.detach with replies pending');
    this.detached = true;
    this.socket.removeAllListeners('error');
    this.socket.removeAllListeners('close');
    return { wire: this.wire, reader: this.reader };
  }

  close(): void {
    this.fail(new LifeboatError('INTERRUPTED', 'the Redis connection was closed'));
    this.socket.destroy();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
    this.socket.destroy();
  }
}

/** `db0:keys=3,expires=1,avg_ttl=0` lines of INFO keyspace as `db0` → keys. */
export function keyspace(info: Map<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of info) {
    const m = /^db(\d+)$/.exec(k);
    const keys = /(?:^|,)keys=(\d+)/.exec(v);
    if (m && keys) out[k] = Number(keys[1]);
  }
  return out;
}
