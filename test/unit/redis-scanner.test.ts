/**
 * The replication-stream scanner (src/sources/redis/scanner.ts) against the value reader:
 * the same command ends and kinds whatever the chunking (down to one byte, names and
 * headers cut anywhere), payloads of any size passed without being held, and a stream
 * that is not commands refused.
 */
import { describe, expect, it } from 'vitest';
import { RespReader, commandName, encodeCommand } from '../../src/sources/redis/resp.js';
import { CommandScanner, kindOf, type CommandKind } from '../../src/sources/redis/scanner.js';
import { pseudoRandom } from '../helpers.js';

function reference(stream: Buffer): Array<[number, CommandKind]> {
  const r = new RespReader();
  r.push(stream);
  const out: Array<[number, CommandKind]> = [];
  let at = 0;
  for (let v = r.next(); v; v = r.next()) {
    at += v.bytes;
    const name = commandName(v.value);
    const arg1 = Array.isArray(v.value) && Buffer.isBuffer(v.value[1]) ? (v.value[1] as Buffer).toString('latin1').toLowerCase() : '';
    out.push([at, kindOf(name ?? '', arg1)]);
  }
  return out;
}

function scanned(stream: Buffer, cuts: number[]): Array<[number, CommandKind]> {
  const s = new CommandScanner();
  const out: Array<[number, CommandKind]> = [];
  let from = 0;
  for (const to of [...cuts, stream.length]) {
    const base = from;
    s.scan(stream.subarray(from, to), (end, kind) => out.push([base + end, kind]));
    from = to;
  }
  return out;
}

describe('the replication-stream scanner', () => {
  const commands: Array<ReadonlyArray<string | Buffer | number>> = [
    ['SELECT', 0],
    ['SET', 'k', 'v'],
    ['MULTI'],
    ['set', 'a', pseudoRandom(70_000, 3)],
    ['Exec'],
    ['REPLCONF', 'GETACK', '*'],
    ['PING'],
    ['multiply', 'x'],
    ['SET', 'execute', 'replconf'],
    ['REPLCONF', 'ACK', 5],
    ['SET', '', ''],
    ['HSET', 'h', ...Array.from({ length: 300 }, (_, i) => `f${i}`)],
  ];
  const stream = Buffer.concat([...commands.map(encodeCommand), encodeCommand(['DEL', 'k'])]);

  it('finds the same command ends and kinds as the value reader, however the stream is cut', () => {
    const want = reference(stream);
    expect(want.map(([, k]) => k)).toEqual(['select', 'other', 'multi', 'other', 'exec', 'getack', 'control', 'other', 'other', 'control', 'other', 'other', 'other']);
    expect(scanned(stream, [])).toEqual(want);
    // Every byte its own chunk.
    expect(scanned(stream, Array.from({ length: stream.length - 1 }, (_, i) => i + 1))).toEqual(want);
    // Random cuts, many times.
    const rnd = pseudoRandom(4 * 2000, 7);
    for (let t = 0; t < 200; t++) {
      const cuts = new Set<number>();
      for (let k = 0; k < 10; k++) cuts.add(1 + (rnd.readUInt32LE((t * 10 + k) * 4 % (rnd.length - 4)) % (stream.length - 1)));
      expect(scanned(stream, [...cuts].sort((a, b) => a - b))).toEqual(want);
    }
  });

  it('refuses what is not a stream of commands, and lengths over the limits', () => {
    const bad = (text: string | Buffer) => () => new CommandScanner().scan(Buffer.isBuffer(text) ? text : Buffer.from(text), () => {});
    expect(bad('+OK\r\n')).toThrow(/something other than a command/);
    expect(bad('SET k v\r\n')).toThrow(/something other than a command/);
    expect(bad('*1\r\n:5\r\n')).toThrow(/not a bulk string/);
    expect(bad('*1\r\n$999999999999\r\n')).toThrow(/more than the limit/);
    expect(bad('*99999999999\r\n')).toThrow(/more than the limit/);
    expect(bad(`*1\r\n$${'9'.repeat(70_000)}`)).toThrow(/longer than the limit/);
    // A bare newline between commands (a keepalive) is passed over.
    const ping = encodeCommand(['PING']);
    expect(scanned(Buffer.concat([ping, Buffer.from('\r\n'), ping]), [ping.length + 1])).toEqual([[ping.length, 'control'], [2 * ping.length + 2, 'control']]);
  });
});
