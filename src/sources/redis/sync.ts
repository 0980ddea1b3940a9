/**
 * A replica's side of the Redis replication protocol, as `redis-cli --rdb` and a real
 * replica speak it: log in, `REPLCONF listening-port` / `capa eof capa psync2`, then
 * `PSYNC ? -1` (a full synchronisation: an RDB, then the command stream from its
 * offset) or `PSYNC <replid> <offset+1>` (a partial one: the server's backlog resends
 * what we have not seen, `+CONTINUE`, or refuses and starts a full one).
 *
 * Offsets count bytes of the stream as the server's `master_repl_offset` does: after
 * `+FULLRESYNC <replid> <offset>` the first byte of the stream is byte offset+1, so a
 * replica that has received N bytes after it stands at offset+N and asks for offset+N+1.
 *
 * Memory is bounded: the RDB is handed out in pieces of at most RDB_PIECE bytes while
 * the socket is paused whenever more than HIGH_WATER bytes wait to be read, so a 1 GB
 * dataset needs a few MiB here. The stream is handed out chunk by chunk, each with the
 * offset after its last complete command outside MULTI…EXEC (a cut point, segment.ts).
 *
 * CPU: a busy server writes to its replicas once per turn of its event loop, so a
 * replica that reads whenever bytes are there reads thousands of small pieces a second,
 * and Node's cost per read (not the parse) made the writer ~15 % slower on two cores.
 * After a small read of the command stream the link rests REST_MS with reading stopped
 * in the kernel (connection.ts, `Wire`): the next read takes everything that piled up,
 * at most a few hundred reads a second, and a command waits at most REST_MS more.
 */
import type * as net from 'node:net';
import { LifeboatError } from '../../errors.js';
import { RedisConnection, replyError, type RedisTarget, type Wire } from './connection.js';
import { RespError, RespReader, encodeCommand } from './resp.js';
import { CommandScanner, TxnTracker } from './scanner.js';
import type { Mark } from './segment.js';

export interface LinkOptions {
  password?: string | undefined;
  /** Continue this history: `offset` is where the stream we hold ends (bytes after the RDB's offset). Absent: a full synchronisation. */
  from?: { replid: string; offset: number } | undefined;
  /** With `from`: the database selected there (the server does not say it again when it continues). */
  db?: number | undefined;
  /** Ask the server not to keep us as a replica after the RDB (Redis 7; older servers ignore it and we just hang up). */
  rdbOnly?: boolean;
  signal?: AbortSignal;
  /** For connecting and replies; also the silence after which the link counts as dead. */
  timeoutMs?: number;
}

export type SyncStart = { mode: 'full'; replid: string; offset: number } | { mode: 'continue'; replid: string; offset: number };

/** Stream bytes as received: `data` holds offsets start..end (exclusive of start, as the server counts). */
export interface StreamChunk {
  data: Buffer;
  start: number;
  end: number;
  /** The last cut point in this chunk, when it has one: the offset and the time the chunk arrived. */
  mark?: Mark;
  /** Transactions (scanner.ts's TxnTracker) that end in this chunk: all at or before `mark`. */
  txns: number;
  /** With `mark`: the database selected there (by the last SELECT before it), when one was. */
  db?: number;
}

/** The socket is paused while this much waits unread (back-pressure from a slow repository). */
const HIGH_WATER = 4 << 20;
const LOW_WATER = 1 << 20;
/** After a read of the command stream smaller than SMALL_READ, reading stops for REST_MS (see above). */
const REST_MS = 5;
const SMALL_READ = 64 << 10;
/** The largest piece of RDB handed out at once. */
const RDB_PIECE = 1 << 20;
/**
 * Silence after which the link is dead: the server pings a replica every
 * repl-ping-replica-period (10 s) and sends newlines while it prepares an RDB.
 */
const DEFAULT_SILENCE_MS = 60_000;
const EOF_MARK_LEN = 40;

export class ReplicaLink {
  private readonly chunks: Buffer[] = [];
  private queued = 0;
  /** Reading stopped because too much waits unread. */
  private paused = false;
  /** Reading stopped for REST_MS after a small read. */
  private resting = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private rdbDone = false;
  private eofMode = false;
  private streamScanner: CommandScanner | undefined;
  private offset = 0;
  private tracker = new TxnTracker();
  /** The database the last SELECT named, and the one selected at the last cut point. */
  private db: number | undefined;
  private markDb: number | undefined;
  private lastMark = 0;
  private acked = 0;
  /** Bytes of RDB handed out so far. */
  rdbBytes = 0;

  private readonly socket: net.Socket;

  private constructor(
    readonly target: RedisTarget,
    private readonly wire: Wire,
    private readonly reader: RespReader,
    private readonly silenceMs: number,
    /** How the server answered PSYNC. */
    public start: SyncStart,
  ) {
    this.socket = wire.socket;
  }

  /** Connects, logs in and sends PSYNC; resolves once the server said whether it continues or starts afresh. */
  static async open(target: RedisTarget, opts: LinkOptions = {}): Promise<ReplicaLink> {
    const conn = await RedisConnection.open(target, { password: opts.password, ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
    let wire: Wire;
    let reader: RespReader;
    try {
      await conn.ok(['REPLCONF', 'listening-port', 0], 'REPLCONF');
      if (opts.rdbOnly) await conn.call(['REPLCONF', 'rdb-only', 1]); // an older server says it does not know it: harmless
      await conn.ok(['REPLCONF', 'capa', 'eof', 'capa', 'psync2'], 'REPLCONF');
      ({ wire, reader } = conn.detach());
    } catch (err) {
      conn.close();
      throw err;
    }
    const link = new ReplicaLink(target, wire, reader, opts.timeoutMs ?? DEFAULT_SILENCE_MS, { mode: 'full', replid: '', offset: 0 });
    link.db = link.markDb = opts.from ? opts.db : undefined;
    link.listen(opts.signal);
    try {
      const from = opts.from;
      wire.socket.write(encodeCommand(from ? ['PSYNC', from.replid, from.offset + 1] : ['PSYNC', '?', -1]));
      // Bare newlines are keepalives: with repl-diskless-sync-delay the server waits for
      // more replicas before it forks, and says +FULLRESYNC only once it does.
      let reply = '';
      while (reply === '') reply = await link.readLine();
      link.start = parseSyncReply(target, reply, from);
      if (link.start.mode === 'continue') link.beginStream();
    } catch (err) {
      link.close();
      throw err;
    }
    return link;
  }

  private listen(signal: AbortSignal | undefined): void {
    const s = this.socket;
    this.wire.sink = (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.queued += chunk.length;
      if (this.queued > HIGH_WATER && !this.paused) {
        this.paused = true;
        s.pause();
      } else if (this.streamScanner && this.wire.pausesInKernel && chunk.length < SMALL_READ && !this.paused && !this.resting) {
        this.resting = true;
        s.pause();
        setTimeout(() => {
          this.resting = false;
          if (!this.paused && !this.failure) s.resume();
        }, REST_MS);
      }
      this.poke();
    };
    s.on('error', (err) => this.fail(new LifeboatError('SOURCE_UNAVAILABLE', `the replication link to Redis at ${this.target.display} failed: ${err.message}`)));
    s.on('close', () => this.fail(new LifeboatError('SOURCE_UNAVAILABLE', `Redis at ${this.target.display} closed the replication link`, { hint: 'the server restarted, or dropped us (client-output-buffer-limit replica, repl-timeout)' })));
    s.setTimeout(this.silenceMs, () => {
      if (!this.paused && !this.resting) this.fail(new LifeboatError('SOURCE_UNAVAILABLE', `Redis at ${this.target.display} sent nothing for ${Math.round(this.silenceMs / 1000)} s on the replication link`));
    });
    const onAbort = () => this.fail(new LifeboatError('INTERRUPTED', 'the replication link was closed'));
    signal?.addEventListener('abort', onAbort, { once: true });
    s.once('close', () => signal?.removeEventListener('abort', onAbort));
    s.resume();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.socket.destroy();
    this.poke();
  }

  /** The next chunk from the socket (waits); throws once the link failed and everything before was read. */
  private async read(): Promise<Buffer> {
    for (;;) {
      const c = this.chunks.shift();
      if (c) {
        this.queued -= c.length;
        if (this.paused && this.queued < LOW_WATER) {
          this.paused = false;
          if (!this.resting) this.socket.resume();
        }
        return c;
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private async readLine(): Promise<string> {
    for (;;) {
      const line = this.reader.line();
      if (line !== undefined) return line;
      this.reader.push(await this.read());
    }
  }

  /**
   * The RDB of a full synchronisation, in pieces, exactly as the server sent it. Must be
   * read to its end before `next()`. Throws when the link fails before the RDB is whole.
   */
  async *rdb(): AsyncGenerator<Buffer> {
    if (this.start.mode !== 'full' || this.rdbDone) throw new Error('ReplicaLink.rdb: no RDB to read');
    let header = '';
    while (header === '') header = await this.readLine(); // bare newlines: keepalives while the server prepares the RDB
    if (header.startsWith('-')) throw replyError(this.target, 'PSYNC', new RespError(header.slice(1)));
    const eof = /^\$EOF:(.{40})$/.exec(header);
    if (eof) {
      this.eofMode = true;
      yield* this.rdbUntilMark(Buffer.from(eof[1] as string, 'latin1'));
    } else {
      const m = /^\$(\d{1,15})$/.exec(header);
      if (!m) throw new LifeboatError('SOURCE_UNAVAILABLE', `Redis at ${this.target.display} sent ${JSON.stringify(header.slice(0, 40))} instead of an RDB`, { hint: 'is this a Redis server?' });
      for (let left = Number(m[1]); left > 0; ) {
        const piece = this.reader.take(Math.min(left, RDB_PIECE));
        if (piece.length === 0) {
          this.reader.push(await this.read());
          continue;
        }
        left -= piece.length;
        this.rdbBytes += piece.length;
        yield piece;
      }
    }
    this.rdbDone = true;
  }

  /** Diskless transfer: the RDB ends with the 40 bytes named in the header; the server sends nothing after them until we ACK. */
  private async *rdbUntilMark(mark: Buffer): AsyncGenerator<Buffer> {
    let held = Buffer.alloc(0);
    for (;;) {
      let piece = this.reader.take(RDB_PIECE);
      if (piece.length === 0) piece = await this.read();
      const all = held.length ? Buffer.concat([held, piece]) : piece;
      const ended = this.reader.buffered === 0 && this.chunks.length === 0 && all.length >= EOF_MARK_LEN && all.subarray(all.length - EOF_MARK_LEN).equals(mark);
      const keep = ended ? EOF_MARK_LEN : Math.min(EOF_MARK_LEN, all.length);
      const out = all.subarray(0, all.length - keep);
      held = Buffer.from(all.subarray(all.length - keep));
      if (out.length > 0) {
        this.rdbBytes += out.length;
        yield out;
      }
      if (ended) return;
    }
  }

  /** Switches to the command stream: what the reader holds past the RDB is its first bytes. */
  private beginStream(): void {
    this.streamScanner = new CommandScanner();
    this.offset = this.start.offset;
    this.lastMark = this.start.offset;
    this.acked = this.start.offset;
    const rest = this.reader.take(Number.MAX_SAFE_INTEGER);
    if (rest.length > 0) {
      this.chunks.unshift(rest);
      this.queued += rest.length;
    }
    // After a diskless RDB the server waits for our first ACK before it streams.
    if (this.eofMode) this.ack(this.acked);
  }

  /**
   * The next chunk of the command stream (waits for it). The offsets and cut points are
   * the link's own: every byte the server sent after the RDB's offset, in order.
   */
  async next(): Promise<StreamChunk> {
    if (!this.streamScanner) {
      if (this.start.mode === 'full' && !this.rdbDone) throw new Error('ReplicaLink.next before the RDB was read');
      this.beginStream();
    }
    const scanner = this.streamScanner as CommandScanner;
    const data = await this.read();
    const time = Date.now();
    const start = this.offset;
    let boundary = 0;
    let getack = false;
    let txns = 0;
    let markDb = this.markDb;
    scanner.scan(data, (end, kind, db) => {
      if (kind === 'getack') getack = true;
      if (kind === 'select') this.db = db;
      const step = this.tracker.step(kind);
      if (step !== 'inside') {
        boundary = start + end;
        markDb = this.db;
      }
      if (step === 'txn') txns++;
    });
    if (getack) this.ack(this.acked);
    this.offset = start + data.length;
    const chunk: StreamChunk = { data, start, end: this.offset, txns };
    if (boundary > this.lastMark) {
      this.lastMark = boundary;
      chunk.mark = [boundary, time];
      this.markDb = markDb;
      if (markDb !== undefined) chunk.db = markDb;
    }
    return chunk;
  }

  /** Tells the server how far we stand (`REPLCONF ACK`): it drops a replica that stays silent for repl-timeout. */
  ack(offset: number): void {
    this.acked = Math.max(this.acked, offset);
    if (!this.failure) this.socket.write(encodeCommand(['REPLCONF', 'ACK', this.acked]));
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  close(): void {
    this.fail(new LifeboatError('INTERRUPTED', 'the replication link was closed'));
  }
}

/** `+FULLRESYNC <replid> <offset>`, `+CONTINUE [<replid>]`, or the server's refusal as a clear error. */
export function parseSyncReply(target: RedisTarget, line: string, from: { replid: string; offset: number } | undefined): SyncStart {
  const full = /^\+FULLRESYNC ([0-9a-f]{40}) (\d{1,19})$/.exec(line);
  if (full) return { mode: 'full', replid: full[1] as string, offset: Number(full[2]) };
  const cont = /^\+CONTINUE(?: ([0-9a-f]{40}))?$/.exec(line);
  if (cont && from) return { mode: 'continue', replid: cont[1] ?? from.replid, offset: from.offset };
  if (line.startsWith('-')) {
    const message = line.slice(1);
    if (/^(NOMASTERLINK|MASTERDOWN)\b|Can't SYNC while not connected/i.test(message)) {
      return refuse(target, message, 'it is a replica whose own master is down: back up the master, or wait until this replica is linked again');
    }
    if (/^(ERR unknown command|NOPERM|WRONGPASS|NOAUTH)/i.test(message)) throw replyError(target, 'PSYNC', new RespError(message));
    return refuse(target, message, 'the server refused to replicate to us; its log says why (a replica-serve-stale-data, LOADING, or a proxy that does not pass replication)');
  }
  throw new LifeboatError('SOURCE_UNAVAILABLE', `Redis at ${target.display} answered PSYNC with ${JSON.stringify(line.slice(0, 60))}`, {
    hint: 'a proxy or managed service that does not allow replication cannot be backed up this way',
  });
}

function refuse(target: RedisTarget, message: string, hint: string): never {
  throw new LifeboatError('SOURCE_UNAVAILABLE', `Redis at ${target.display} refused to synchronise a replica: ${message}`, { hint });
}
