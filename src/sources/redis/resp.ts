/**
 * RESP (the Redis serialization protocol, version 2 as spoken on a replication link):
 * an encoder for commands and a resumable reader that takes bytes as they arrive.
 *
 * The reader never trusts a length it reads: a bulk string longer than `maxBulk`, an
 * array longer than `maxArray` or nested deeper than `maxDepth` is refused before
 * anything is allocated for it, and a partial value is kept as bytes in one growing
 * buffer (amortised copies), not as a list re-joined on every chunk. Parsing resumes
 * where it stopped, so a command of a million arguments arriving in small chunks is
 * read once, not once per chunk.
 *
 * Besides values, the reader hands out raw bytes (`line`, `take`): a replication link
 * sends the RDB payload and keepalive newlines between RESP values.
 */
import { LifeboatError } from '../../errors.js';

export class RespError {
  constructor(readonly message: string) {}
}

export type RespValue = string | number | null | Buffer | RespError | RespValue[];

export interface RespLimits {
  /** Longest bulk string (Redis's own proto-max-bulk-len default is 512 MB). */
  maxBulk: number;
  /** Most elements of one array. */
  maxArray: number;
  /** Deepest nesting of arrays. */
  maxDepth: number;
  /** Longest simple line (+status, -error, :integer, headers). */
  maxLine: number;
}

export const DEFAULT_LIMITS: RespLimits = { maxBulk: 512 << 20, maxArray: 1 << 24, maxDepth: 8, maxLine: 64 << 10 };

/** One command as RESP: an array of bulk strings. */
export function encodeCommand(args: ReadonlyArray<string | Buffer | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`, 'latin1')];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
    parts.push(Buffer.from(`$${b.length}\r\n`, 'latin1'), b, CRLF);
  }
  return Buffer.concat(parts);
}

const CRLF = Buffer.from('\r\n', 'latin1');

interface Frame {
  items: RespValue[];
  left: number;
}

/** A value read, and how many bytes of the stream it took. */
export interface Read {
  value: RespValue;
  bytes: number;
}

export function protocolError(what: string): LifeboatError {
  return new LifeboatError('SOURCE_UNAVAILABLE', `the Redis server sent ${what}`, {
    hint: 'is this a Redis server (or a proxy that speaks its protocol)? the connection was closed',
  });
}

export class RespReader {
  private data = Buffer.alloc(0);
  /** Bytes in `data` that hold stream (from 0). */
  private len = 0;
  /** Where the unparsed bytes start. */
  private pos = 0;
  /** Where the value being parsed started (everything before it is consumed). */
  private valueStart = 0;
  private readonly stack: Frame[] = [];
  /** Bytes consumed since the reader was created: a replication offset counts these. */
  consumed = 0;

  constructor(private readonly limits: RespLimits = DEFAULT_LIMITS) {}

  /** Unconsumed bytes held. */
  get buffered(): number {
    return this.len - this.valueStart;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const keep = this.len - this.valueStart;
    if (this.valueStart > 0 && (keep === 0 || this.valueStart >= this.data.length / 2 || this.len + chunk.length > this.data.length)) {
      this.data.copyWithin(0, this.valueStart, this.len);
      this.pos -= this.valueStart;
      this.len = keep;
      this.valueStart = 0;
    }
    if (this.len + chunk.length > this.data.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.len + chunk.length, this.data.length * 2, 64 << 10));
      this.data.copy(grown, 0, 0, this.len);
      this.data = grown;
    }
    chunk.copy(this.data, this.len);
    this.len += chunk.length;
  }

  /** The next line (without its CRLF, or a bare LF as a keepalive sends), or undefined until one is complete. Only between values. */
  line(): string | undefined {
    this.atBoundary('line');
    const nl = this.data.indexOf(0x0a, this.pos);
    if (nl < 0 || nl >= this.len) {
      if (this.len - this.pos > this.limits.maxLine) throw protocolError('a line longer than the limit');
      return undefined;
    }
    const end = nl > this.pos && this.data[nl - 1] === 0x0d ? nl - 1 : nl;
    const text = this.data.toString('latin1', this.pos, end);
    this.consume(nl + 1);
    return text;
  }

  /** Up to `max` raw bytes (a copy), or an empty buffer when none are held. Only between values. */
  take(max: number): Buffer {
    this.atBoundary('take');
    const n = Math.min(max, this.len - this.pos);
    const out = Buffer.from(this.data.subarray(this.pos, this.pos + n));
    this.consume(this.pos + n);
    return out;
  }

  /** The next complete value and the bytes it took, or undefined until it has arrived. */
  next(): Read | undefined {
    const start = this.consumed;
    for (;;) {
      const v = this.scalar();
      if (v === NEED) return undefined;
      let value: RespValue | typeof OPEN = v;
      // Close every array this value completes.
      while (value !== OPEN) {
        const top = this.stack[this.stack.length - 1];
        if (!top) {
          this.consume(this.pos);
          return { value, bytes: this.consumed - start };
        }
        top.items.push(value);
        top.left--;
        if (top.left > 0) break;
        this.stack.pop();
        value = top.items;
      }
    }
  }

  private consume(to: number): void {
    this.consumed += to - this.valueStart;
    this.pos = to;
    this.valueStart = to;
  }

  private atBoundary(what: string): void {
    if (this.stack.length > 0 || this.pos !== this.valueStart) throw new Error(`RespReader.${what} inside a value`);
  }

  /** Parses one header and, for scalars, its value; opens a frame for an array. */
  private scalar(): RespValue | typeof NEED | typeof OPEN {
    if (this.pos >= this.len) return NEED;
    const nl = this.data.indexOf(0x0a, this.pos);
    if (nl < 0 || nl >= this.len) {
      if (this.len - this.pos > this.limits.maxLine) throw protocolError('a header longer than the limit');
      return NEED;
    }
    if (nl === this.pos || this.data[nl - 1] !== 0x0d) throw protocolError('a line without CRLF');
    const type = this.data[this.pos] as number;
    const text = this.data.toString('latin1', this.pos + 1, nl - 1);
    const after = nl + 1;
    switch (type) {
      case 0x2b: // +
        this.pos = after;
        return text;
      case 0x2d: // -
        this.pos = after;
        return new RespError(text);
      case 0x3a: {
        // :
        this.pos = after;
        return integer(text);
      }
      case 0x24: {
        // $
        const n = integer(text);
        if (n === -1) {
          this.pos = after;
          return null;
        }
        if (n < 0 || n > this.limits.maxBulk) throw protocolError(`a bulk string of ${n} bytes (the limit is ${this.limits.maxBulk})`);
        if (this.len < after + n + 2) return NEED;
        if (this.data[after + n] !== 0x0d || this.data[after + n + 1] !== 0x0a) throw protocolError('a bulk string not ended by CRLF');
        this.pos = after + n + 2;
        return Buffer.from(this.data.subarray(after, after + n));
      }
      case 0x2a: {
        // *
        const n = integer(text);
        if (n === -1) {
          this.pos = after;
          return null;
        }
        if (n < 0 || n > this.limits.maxArray) throw protocolError(`an array of ${n} elements (the limit is ${this.limits.maxArray})`);
        this.pos = after;
        if (n === 0) return [];
        if (this.stack.length >= this.limits.maxDepth) throw protocolError('arrays nested deeper than the limit');
        this.stack.push({ items: [], left: n });
        return OPEN;
      }
      default:
        throw protocolError(`an unknown reply type ${JSON.stringify(String.fromCharCode(type))}`);
    }
  }
}

const NEED = Symbol('need');
const OPEN = Symbol('open');

function integer(text: string): number {
  if (!/^-?\d{1,15}$/.test(text)) throw protocolError(`a malformed number ${JSON.stringify(text.slice(0, 20))}`);
  return Number(text);
}

/** A reply as text (bulk or status), or undefined. */
export function asText(v: RespValue): string | undefined {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return undefined;
}

/** A command's name, lower-case, when `v` is a command array. */
export function commandName(v: RespValue): string | undefined {
  if (!Array.isArray(v) || v.length === 0) return undefined;
  const first = v[0] as RespValue;
  const t = asText(first);
  return t?.toLowerCase();
}
