/**
 * A tiny Redis master, in process, that a scratch redis-server replicates from: how a
 * restore replays a command stream faithfully.
 *
 * Why not send the commands through a normal client: a key whose PEXPIREAT has passed
 * in real time would be lazily expired while the stream is replayed (an APPEND on it
 * would start from nothing), and a client's command may differ from what the master
 * applied. A replica applying its master's stream never expires keys itself and
 * executes exactly the effects the master propagated, so the result is the master's
 * state at the cut, whatever the clock says now.
 *
 * The conversation is the one a Redis 7 replica starts: PING (answered -NOAUTH until
 * it logged in; the replica accepts that), AUTH <secret>, REPLCONF…, PSYNC; the feed
 * answers +FULLRESYNC with the base's replication id and offset, the RDB as a bulk
 * payload (no trailing CRLF), then the stream's bytes up to the cut, then
 * `REPLCONF GETACK *`. A `REPLCONF ACK n` with n at or past the cut proves the replica
 * applied everything (it acknowledges only processed bytes).
 *
 * Only one connection is ever served, and only after it sent the secret (a random
 * value given to the scratch server as `masterauth` through its stdin): another local
 * user connecting to the port gets -NOAUTH and is disconnected, never a byte of data.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { LifeboatError } from '../../errors.js';
import { RespReader, asText, commandName, encodeCommand, type RespValue } from './resp.js';

/** What a replica sends before and after PSYNC is small: anything bigger is not a replica. */
const HANDSHAKE_LIMITS = { maxBulk: 4096, maxArray: 16, maxDepth: 1, maxLine: 4096 };
/** A connection that has not logged in within this is dropped (a real replica sends AUTH at once). */
const LOGIN_MS = 10_000;

export interface FeedPayload {
  replid: string;
  /** The offset the RDB is consistent at. */
  offset: number;
  rdbBytes: number;
  /** Writes exactly rdbBytes to `out` and ends it (engine/restore/stream.ts does). */
  writeRdb(out: Writable): Promise<number>;
  /** The stream's bytes from `offset` on, up to the cut, in order. */
  stream(): AsyncIterable<Buffer>;
}

export interface FeedWaitOptions {
  /** Called about once a second while waiting; throw to give up (the scratch server died, a stall). */
  poll?: (acked: number) => Promise<void>;
  signal?: AbortSignal;
}

function secretEquals(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

export class Feed {
  private replica: net.Socket | undefined;
  private acked = -1;
  private psyncSeen = false;
  private lastPoll = 0;
  private failure: Error | undefined;
  private readonly others = new Set<net.Socket>();
  /** Connections refused (for the report and tests). */
  refused = 0;

  private constructor(
    private readonly server: net.Server,
    private readonly secret: string,
  ) {
    server.on('connection', (s) => this.accept(s));
  }

  /** Listens on 127.0.0.1, on a free port. */
  static async listen(secret: string): Promise<Feed> {
    const server = net.createServer();
    const feed = new Feed(server, secret);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return feed;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  private accept(s: net.Socket): void {
    if (this.replica) {
      this.refused++;
      s.destroy();
      return;
    }
    this.others.add(s);
    const reader = new RespReader(HANDSHAKE_LIMITS);
    const timer = setTimeout(() => s.destroy(), LOGIN_MS);
    const drop = () => {
      clearTimeout(timer);
      this.others.delete(s);
    };
    s.on('close', drop);
    s.on('error', () => s.destroy());
    s.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
        for (let r = reader.next(); r; r = reader.next()) {
          const name = commandName(r.value);
          const args = Array.isArray(r.value) ? r.value.map((v) => asText(v) ?? '') : [];
          if (name === 'ping') {
            s.write('-NOAUTH Authentication required.\r\n');
          } else if (name === 'auth' && (args.length === 2 || args.length === 3) && secretEquals(args[args.length - 1] as string, this.secret) && !this.replica) {
            clearTimeout(timer);
            this.others.delete(s);
            s.removeAllListeners('data');
            s.removeAllListeners('close');
            s.write('+OK\r\n');
            this.adopt(s, reader);
            return;
          } else {
            this.refused++;
            s.end(name === 'auth' ? '-WRONGPASS invalid username-password pair or user is disabled.\r\n' : '-NOAUTH Authentication required.\r\n');
            s.destroy();
            return;
          }
        }
      } catch {
        this.refused++;
        s.destroy();
      }
    });
  }

  /** The logged-in replica: the one connection served from now on. */
  private adopt(s: net.Socket, reader: RespReader): void {
    this.replica = s;
    // Nobody else is let in any more; those still waiting to log in are dropped.
    this.server.close();
    for (const o of this.others) o.destroy();
    this.others.clear();
    s.setNoDelay(true);
    s.on('error', (err) => this.fail(new LifeboatError('RECOVERY_FAILED', `the scratch server's replication link failed: ${err.message}`)));
    s.on('close', () => this.fail(new LifeboatError('RECOVERY_FAILED', "the scratch server closed its replication link", { hint: 'its log says why (redis-server stopped, or could not load the RDB)' })));
    let prev = 0;
    s.on('data', (chunk: Buffer) => {
      try {
        // While it loads the RDB, a replica sends a bare LF now and then to keep the link
        // alive. Its commands (REPLCONF ACK n) are text with CRLF line ends, so an LF not
        // after a CR is such a keepalive, and is dropped.
        const kept = chunk.filter((b, i) => b !== 0x0a || (i > 0 ? chunk[i - 1] : prev) === 0x0d);
        prev = chunk[chunk.length - 1] ?? prev;
        reader.push(Buffer.from(kept));
        this.drain(reader);
      } catch (err) {
        this.fail(err as Error);
      }
    });
    // Whatever came with AUTH (a real replica waits for +OK, but need not).
    try {
      this.drain(reader);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private drain(reader: RespReader): void {
    for (let r = reader.next(); r; r = reader.next()) this.onCommand(r.value);
  }

  private onCommand(v: RespValue): void {
    const name = commandName(v);
    const args = Array.isArray(v) ? v.map((a) => asText(a) ?? '') : [];
    const s = this.replica as net.Socket;
    if (name === 'ping') s.write('+PONG\r\n');
    else if (name === 'replconf' && args[1]?.toLowerCase() === 'ack') {
      const n = Number(args[2]);
      if (Number.isSafeInteger(n) && n > this.acked) this.acked = n;
    } else if (name === 'replconf') s.write('+OK\r\n');
    else if (name === 'psync' || name === 'sync') this.psyncSeen = true;
    else s.write(`-ERR unknown command\r\n`);
  }

  private fail(err: Error): void {
    this.failure ??= err;
  }

  /**
   * Waits for the replica to ask (PSYNC), sends the base and the stream, and resolves
   * once the replica acknowledged the stream's end (returned). The socket's
   * back-pressure paces the repository reads.
   */
  async serve(payload: FeedPayload, opts: FeedWaitOptions = {}): Promise<{ end: number; acked: number }> {
    await this.until(() => this.psyncSeen, opts);
    const s = this.replica as net.Socket;
    await write(s, Buffer.from(`+FULLRESYNC ${payload.replid} ${payload.offset}\r\n$${payload.rdbBytes}\r\n`, 'latin1'));
    const sent = await payload.writeRdb(socketWriter(s));
    if (sent !== payload.rdbBytes) {
      throw new LifeboatError('CORRUPT', `the snapshot's RDB has ${sent} bytes, its point says ${payload.rdbBytes}`);
    }
    let at = payload.offset;
    for await (const piece of payload.stream()) {
      this.check(opts);
      await write(s, piece);
      at += piece.length;
    }
    await write(s, encodeCommand(['REPLCONF', 'GETACK', '*']));
    await this.until(() => this.acked >= at, opts);
    return { end: at, acked: this.acked };
  }

  private async until(cond: () => boolean, opts: FeedWaitOptions): Promise<void> {
    for (;;) {
      await new Promise((r) => setTimeout(r, 20));
      if (cond()) return;
      this.check(opts);
      if (opts.poll && Date.now() - this.lastPoll >= 1000) {
        this.lastPoll = Date.now();
        await opts.poll(this.acked);
      }
    }
  }

  private check(opts: FeedWaitOptions): void {
    if (opts.signal?.aborted) throw new LifeboatError('INTERRUPTED', 'interrupted during the replay');
    if (this.failure) throw this.failure;
  }

  close(): void {
    this.server.close();
    for (const o of this.others) o.destroy();
    this.replica?.destroy();
  }
}

function write(s: net.Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.destroyed) {
      reject(new LifeboatError('RECOVERY_FAILED', 'the scratch server closed its replication link'));
      return;
    }
    if (s.write(data)) resolve();
    else {
      const onDrain = () => {
        s.off('close', onClose);
        resolve();
      };
      const onClose = () => {
        s.off('drain', onDrain);
        reject(new LifeboatError('RECOVERY_FAILED', 'the scratch server closed its replication link'));
      };
      s.once('drain', onDrain);
      s.once('close', onClose);
    }
  });
}

/** A Writable that writes into the socket and, when ended, leaves the socket open. */
function socketWriter(s: net.Socket): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      write(s, chunk).then(() => cb(), cb);
    },
  });
}
