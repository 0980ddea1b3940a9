/**
 * Where the commands of a replication stream end, without reading them into values.
 *
 * A replicator only needs to know where each command ends (to cut segments at command
 * boundaries outside MULTI…EXEC, and to count transactions: TxnTracker below) and
 * whether it is MULTI, EXEC, REPLCONF GETACK or a command that changes no data. The
 * stream is nothing but arrays of bulk strings, so this is a small resumable state
 * machine over the bytes as they arrive: it parses the `*N` and `$L` headers from the
 * buffer in place, skips payloads by count and looks only at the first bytes of the
 * first two arguments. It allocates nothing per command and never buffers a payload,
 * so a value of hundreds of megabytes costs what its bytes cost to pass, and a length
 * read from the stream is never used to size anything (it is still bounded, as the
 * value reader's limits are: a larger one is a protocol error).
 */
import { DEFAULT_LIMITS, protocolError, type RespLimits } from './resp.js';

/** `select`: SELECT (its database is passed to `found`); `control`: PING and REPLCONF other than GETACK — housekeeping that changes no data. */
export type CommandKind = 'multi' | 'exec' | 'getack' | 'select' | 'control' | 'other';

/**
 * What one command does to the transaction count (docs/redis.md, "Transaction numbers"):
 * a transaction is a command that is not housekeeping, outside MULTI…EXEC, or a whole
 * MULTI…EXEC block (ending at its EXEC). `inside`: within a block (no cut point there);
 * `cut`: a cut point that ends no transaction (PING, SELECT, REPLCONF); `txn`: a cut
 * point that ends one. The replicator counts with this when it ships and the readers
 * find the same ends with it later, so a number always maps to the same offset.
 */
export type TxnStep = 'inside' | 'cut' | 'txn';

export class TxnTracker {
  private inTx = false;

  step(kind: CommandKind): TxnStep {
    if (kind === 'multi') {
      this.inTx = true;
      return 'inside';
    }
    if (kind === 'exec') {
      this.inTx = false;
      return 'txn';
    }
    if (this.inTx) return 'inside';
    return kind === 'other' ? 'txn' : 'cut';
  }
}

/** Arguments longer than this are not looked at (every name we look for is shorter). */
const CAPTURE = 8;

const enum Expect {
  /** `*N` (or a bare newline between commands). */
  Array,
  /** `$L` of the next argument. */
  Bulk,
}

export class CommandScanner {
  private expect = Expect.Array;
  /** Arguments of the current command still to come. */
  private left = 0;
  /** Bytes of the current argument (payload and CRLF) still to pass. */
  private skip = 0;
  /** A header line cut by the end of a chunk. */
  private head = '';
  /** Which argument is being passed, and the first bytes of the first two (lower case, when short). */
  private index = 0;
  private capture = 0;
  private captured = '';
  private arg0 = '';
  private arg1 = '';

  constructor(private readonly limits: RespLimits = DEFAULT_LIMITS) {}

  /**
   * Calls `found` with the end (an index into `chunk`, exclusive) and the kind of every
   * command completed in it; for SELECT also the database it names (undefined when that is not a number).
   */
  scan(chunk: Buffer, found: (end: number, kind: CommandKind, db?: number) => void): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, n - i);
        if (this.capture > 0) {
          const c = Math.min(take, this.capture);
          this.captured += chunk.toString('latin1', i, i + c);
          this.capture -= c;
        }
        this.skip -= take;
        i += take;
        if (this.skip === 0) this.argumentEnded(i, found);
        continue;
      }
      const nl = chunk.indexOf(0x0a, i);
      if (nl < 0) {
        this.head += chunk.toString('latin1', i, n);
        if (this.head.length > this.limits.maxLine) throw protocolError('a header line longer than the limit');
        return;
      }
      let value: number | undefined;
      let type: number;
      if (this.head === '') {
        type = nl > i ? (chunk[i] as number) : 0x0a;
        value = nl > i ? digits(chunk, i + 1, nl > i + 1 && chunk[nl - 1] === 0x0d ? nl - 1 : nl) : undefined;
      } else {
        const line = (this.head + chunk.toString('latin1', i, nl)).replace(/\r$/, '');
        this.head = '';
        type = line.length > 0 ? line.charCodeAt(0) : 0x0a;
        value = /^[*$]\d{1,15}$/.test(line) ? Number(line.slice(1)) : undefined;
      }
      i = nl + 1;
      this.header(type, value, i, found);
    }
  }

  private header(type: number, value: number | undefined, at: number, found: (end: number, kind: CommandKind, db?: number) => void): void {
    if (this.expect === Expect.Array) {
      if (type === 0x0a || type === 0x0d) return; // a keepalive newline between commands
      if (type !== 0x2a || value === undefined) throw protocolError('something other than a command in the replication stream');
      if (value > this.limits.maxArray) throw protocolError(`a command of ${value} arguments, more than the limit`);
      if (value === 0) {
        found(at, 'other');
        return;
      }
      this.left = value;
      this.index = 0;
      this.arg0 = this.arg1 = '';
      this.expect = Expect.Bulk;
      return;
    }
    if (type !== 0x24 || value === undefined) throw protocolError('a command argument that is not a bulk string');
    if (value > this.limits.maxBulk) throw protocolError(`a bulk string of ${value} bytes, more than the limit`);
    this.skip = value + 2;
    this.capture = this.index < 2 && value <= CAPTURE ? value : 0;
    this.captured = '';
  }

  private argumentEnded(at: number, found: (end: number, kind: CommandKind, db?: number) => void): void {
    if (this.index === 0) this.arg0 = this.captured.toLowerCase();
    else if (this.index === 1) this.arg1 = this.captured.toLowerCase();
    this.captured = '';
    this.index++;
    if (--this.left > 0) return;
    this.expect = Expect.Array;
    const kind = kindOf(this.arg0, this.arg1);
    if (kind === 'select') found(at, kind, /^\d{1,5}$/.test(this.arg1) ? Number(this.arg1) : undefined);
    else found(at, kind);
  }
}

/** The kind of a command from its first two arguments (lower case). */
export function kindOf(arg0: string, arg1: string): CommandKind {
  if (arg0 === 'multi') return 'multi';
  if (arg0 === 'exec') return 'exec';
  if (arg0 === 'replconf') return arg1 === 'getack' ? 'getack' : 'control';
  if (arg0 === 'select') return 'select';
  return arg0 === 'ping' ? 'control' : 'other';
}

/** The decimal number in bytes [from, to), or undefined when they are not 1–15 digits. */
function digits(buf: Buffer, from: number, to: number): number | undefined {
  if (to <= from || to - from > 15) return undefined;
  let v = 0;
  for (let k = from; k < to; k++) {
    const d = (buf[k] as number) - 0x30;
    if (d < 0 || d > 9) return undefined;
    v = v * 10 + d;
  }
  return v;
}
