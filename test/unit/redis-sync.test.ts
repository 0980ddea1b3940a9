/**
 * The replica link (src/sources/redis/sync.ts) against a scripted master on a local
 * socket, so the awkward cases are exact: keepalive newlines before the RDB, a diskless
 * RDB whose end mark arrives split across writes, a disk RDB followed at once by the
 * stream, commands cut anywhere, MULTI…EXEC (no cut point inside), PSYNC's offset+1,
 * and refusals. Also log retention of command segments (log-retention.ts).
 */
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { REDIS_SEGMENT_CODEC, compactGeneration } from '../../src/sources/redis/compact.js';
import { compactLog } from '../../src/engine/log-compact.js';
import { trimRedis } from '../../src/sources/redis/log-retention.js';
import { RespReader, encodeCommand, type RespValue } from '../../src/sources/redis/resp.js';
import { ReplicaLink, type StreamChunk } from '../../src/sources/redis/sync.js';
import { chainFrom, decodeSegment, encodeSegment, parseSegmentName, segmentName, type Mark } from '../../src/sources/redis/segment.js';
import { parseRedisUrl } from '../../src/sources/redis/connection.js';
import { Repository, PROGRAM_VERSION } from '../../src/repo/repository.js';
import type { SnapshotManifest } from '../../src/repo/snapshot/snapshot.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';

const REPLID = 'a'.repeat(40);
const servers: net.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

type Script = (cmd: string[], sock: net.Socket, seen: string[][]) => void | Promise<void>;

/** A master that answers each command the replica sends with `script`; records what it was sent. */
async function master(script: Script): Promise<{ url: string; seen: string[][] }> {
  const seen: string[][] = [];
  const server = net.createServer((sock) => {
    const r = new RespReader();
    sock.on('data', (d: Buffer) => {
      r.push(d);
      for (let v = r.next(); v; v = r.next()) {
        const cmd = (v.value as RespValue[]).map((x) => (x as Buffer).toString());
        seen.push(cmd);
        void script(cmd, sock, seen);
      }
    });
    sock.on('error', () => {});
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `redis://127.0.0.1:${(server.address() as net.AddressInfo).port}`, seen };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

async function collect(gen: AsyncGenerator<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of gen) parts.push(p);
  return Buffer.concat(parts);
}

async function chunksUntil(link: ReplicaLink, end: number): Promise<StreamChunk[]> {
  const out: StreamChunk[] = [];
  while ((out[out.length - 1]?.end ?? 0) < end) out.push(await link.next());
  return out;
}

const STREAM = Buffer.concat([
  encodeCommand(['SELECT', '0']),
  encodeCommand(['SET', 'a', '1']),
  encodeCommand(['MULTI']),
  encodeCommand(['INCR', 'n']),
  encodeCommand(['INCR', 'n']),
  encodeCommand(['EXEC']),
  encodeCommand(['PING']),
]);
/** Offsets (after 100) where STREAM may be cut: after each command outside MULTI…EXEC. */
const BOUNDARIES = (() => {
  const out: number[] = [];
  let at = 100;
  for (const [i, c] of [['SELECT', '0'], ['SET', 'a', '1'], ['MULTI'], ['INCR', 'n'], ['INCR', 'n'], ['EXEC'], ['PING']].entries()) {
    at += encodeCommand(c).length;
    if (i < 2 || i > 4) out.push(at);
  }
  return out;
})();

describe('ReplicaLink', () => {
  it('diskless: keepalives before the reply and the RDB, an RDB whose end mark is split, no stream until our ACK; cut points only outside MULTI…EXEC', async () => {
    const rdb = Buffer.from('REDIS0010' + 'x'.repeat(5000) + '\xff12345678', 'latin1');
    const mark = 'M'.repeat(40);
    const m = await master(async (cmd, sock) => {
      const word = cmd[0]?.toUpperCase();
      if (word === 'REPLCONF' && cmd[1] === 'ACK') {
        if (Number(cmd[2]) === 100 && !sock.readableEnded) {
          // The stream in awkward pieces: cut inside commands, inside the transaction.
          for (let i = 0; i < STREAM.length; i += 7) {
            sock.write(STREAM.subarray(i, i + 7));
            await tick();
          }
        }
        return;
      }
      if (word === 'REPLCONF') return void sock.write('+OK\r\n');
      if (word === 'PSYNC') {
        // Keepalives before the reply too: a server waiting out repl-diskless-sync-delay.
        sock.write('\n');
        await tick();
        sock.write('\n');
        sock.write(`+FULLRESYNC ${REPLID} 100\r\n`);
        sock.write('\n');
        await tick();
        sock.write('\n');
        sock.write(`$EOF:${mark}\r\n`);
        // The last piece starts inside the end mark.
        const body = Buffer.concat([rdb, Buffer.from(mark, 'latin1')]);
        const cuts = [0, 1000, 4990, body.length - 20, body.length];
        for (let i = 1; i < cuts.length; i++) {
          sock.write(body.subarray(cuts[i - 1], cuts[i]));
          await tick();
        }
      }
    });
    const link = await ReplicaLink.open(parseRedisUrl(m.url), { timeoutMs: 5000 });
    expect(link.start).toEqual({ mode: 'full', replid: REPLID, offset: 100 });
    expect(await collect(link.rdb())).toEqual(rdb);
    expect(link.rdbBytes).toBe(rdb.length);
    const chunks = await chunksUntil(link, 100 + STREAM.length);
    expect(Buffer.concat(chunks.map((c) => c.data))).toEqual(STREAM);
    let at = 100;
    for (const c of chunks) {
      expect(c.start).toBe(at);
      at = c.end;
    }
    const marks = chunks.map((c) => c.mark).filter((x): x is Mark => x !== undefined).map((x) => x[0]);
    expect(marks.length).toBeGreaterThan(0);
    for (const o of marks) expect(BOUNDARIES).toContain(o);
    expect(marks[marks.length - 1]).toBe(100 + STREAM.length);
    expect(m.seen.find((c) => c[0] === 'PSYNC')).toEqual(['PSYNC', '?', '-1']);
    expect(m.seen.some((c) => c[0] === 'REPLCONF' && c[1] === 'capa' && c.includes('eof') && c.includes('psync2'))).toBe(true);
    link.close();
  });

  it('disk RDB ($len, no CRLF after it) with the stream following in the same write', async () => {
    const rdb = Buffer.from('REDIS0010\r\n\r\nbinary\x00\xff', 'latin1');
    const m = await master((cmd, sock) => {
      if (cmd[0] === 'REPLCONF') return void (cmd[1] === 'ACK' || sock.write('+OK\r\n'));
      if (cmd[0] === 'PSYNC') sock.write(Buffer.concat([Buffer.from(`+FULLRESYNC ${REPLID} 100\r\n$${rdb.length}\r\n`), rdb, STREAM]));
    });
    const link = await ReplicaLink.open(parseRedisUrl(m.url), { timeoutMs: 5000 });
    expect(await collect(link.rdb())).toEqual(rdb);
    const chunks = await chunksUntil(link, 100 + STREAM.length);
    expect(Buffer.concat(chunks.map((c) => c.data))).toEqual(STREAM);
    expect(chunks[chunks.length - 1]!.mark?.[0]).toBe(100 + STREAM.length);
    link.close();
  });

  it('+CONTINUE: asks for the byte after what it holds, and the stream goes on from there under the new id', async () => {
    const next = 'b'.repeat(40);
    const m = await master((cmd, sock) => {
      if (cmd[0] === 'REPLCONF') return void (cmd[1] === 'ACK' || sock.write('+OK\r\n'));
      if (cmd[0] === 'PSYNC') sock.write(Buffer.concat([Buffer.from(`+CONTINUE ${next}\r\n`), STREAM]));
    });
    const link = await ReplicaLink.open(parseRedisUrl(m.url), { from: { replid: REPLID, offset: 100 }, timeoutMs: 5000 });
    expect(link.start).toEqual({ mode: 'continue', replid: next, offset: 100 });
    expect(m.seen.find((c) => c[0] === 'PSYNC')).toEqual(['PSYNC', REPLID, '101']);
    const chunks = await chunksUntil(link, 100 + STREAM.length);
    expect(chunks[0]!.start).toBe(100);
    link.close();
  });


  it('a server trickling one command per write is read in batches: every byte in order, far fewer reads than writes', async () => {
    // A busy server writes to its replica once per turn of its event loop. Reading each
    // write on its own cost the writer ~15 % on two cores (bench/redis-pitr.mjs); the
    // link rests after a small read, so the next read takes what piled up meanwhile.
    const WRITES = 300;
    const one = encodeCommand(['SET', 'k', 'v']);
    const m = await master(async (cmd, sock) => {
      if (cmd[0] === 'REPLCONF') return void (cmd[1] === 'ACK' || sock.write('+OK\r\n'));
      if (cmd[0] !== 'PSYNC') return;
      sock.setNoDelay(true); // as Redis sets it on its clients' connections
      sock.write(`+CONTINUE ${REPLID}\r\n`);
      for (let i = 0; i < WRITES; i++) {
        sock.write(one);
        await new Promise((r) => setImmediate(r)); // its own write, as a server's event loop does
        if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1));
      }
    });
    const link = await ReplicaLink.open(parseRedisUrl(m.url), { from: { replid: REPLID, offset: 100 }, timeoutMs: 5000 });
    const chunks = await chunksUntil(link, 100 + WRITES * one.length);
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(Buffer.concat(Array.from({ length: WRITES }, () => one)))).toBe(true);
    expect(chunks.at(-1)!.mark![0]).toBe(100 + WRITES * one.length);
    // Without the rest this is one read per write, or close to it.
    expect(chunks.length).toBeLessThan(WRITES / 3);
    link.close();
  });
  it('refusals are one clear SOURCE_UNAVAILABLE each', async () => {
    const cases: Array<[string, RegExp]> = [
      ['-NOMASTERLINK Can\'t SYNC while not connected with my master', /refused to synchronise a replica: NOMASTERLINK/],
      ['-NOPERM this user has no permissions to run the \'psync\' command', /does not let this user run PSYNC/],
      ['+WHAT', /answered PSYNC with "\+WHAT"/],
    ];
    for (const [reply, message] of cases) {
      const m = await master((cmd, sock) => {
        if (cmd[0] === 'REPLCONF') return void sock.write('+OK\r\n');
        if (cmd[0] === 'PSYNC') sock.write(`${reply}\r\n`);
      });
      await expect(ReplicaLink.open(parseRedisUrl(m.url), { timeoutMs: 5000 })).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE', message: expect.stringMatching(message) });
    }
    const denied = await master((cmd, sock) => void sock.write(cmd[0] === 'AUTH' ? '-WRONGPASS invalid username-password pair or user is disabled.\r\n' : '+OK\r\n'));
    await expect(ReplicaLink.open(parseRedisUrl(denied.url), { password: 'x', timeoutMs: 5000 })).rejects.toMatchObject({ code: 'SOURCE_UNAVAILABLE', message: expect.stringMatching(/refused the login/) });
  });
});

describe('trimRedis', () => {
  const T0 = Date.UTC(2026, 9, 1);
  const DAY = 86_400_000;
  function base(day: number, generation: string, offset: number): SnapshotManifest {
    return {
      version: 1,
      time: new Date(T0 + day * DAY).toISOString(),
      hostname: 'h',
      username: 'u',
      paths: ['/redis/cache'],
      tags: [],
      excludes: [],
      tree: '00'.repeat(32),
      source: { kind: 'redis', name: 'cache' },
      consistency: { replid: REPLID, offset, generation, rdbBytes: 10 },
      summary: { filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirs: 0, totalBytes: 0, totalFiles: 0, addedBytes: 0, processedBytes: 0, errors: 0, durationMs: 0 },
      programVersion: PROGRAM_VERSION,
    };
  }

  it('removes segments before the window base and generations without a base; dry runs only count; busy spares baseless generations', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const g1 = '0000000000010000000a';
    const g0 = '00000000000100000000';
    const put = async (gen: string, start: number, end: number, day: number) => {
      const meta = { v: 1 as const, replid: REPLID, start, end, marks: [[end, T0 + day * DAY] as Mark] };
      await repo.putLog('redis.cache', gen, segmentName(meta), encodeSegment({ meta, stream: Buffer.alloc(end - start) }));
    };
    for (let i = 0; i < 10; i++) await put(g1, 100 + i * 10, 110 + i * 10, i);
    await put(g0, 0, 10, 0);
    for (const m of [base(0, g1, 100), base(5, g1, 150), base(8, g1, 185)]) await repo.saveSnapshot(m);
    const snaps = await repo.listSnapshots();
    const dry = await trimRedis(repo, 'cache', snaps, T0 + 6 * DAY, { dryRun: true, busy: false });
    expect(dry.removed).toBe(6); // g1's five before offset 150, and g0 whole
    expect((await repo.listLogs('redis.cache')).length).toBe(11);
    const busy = await trimRedis(repo, 'cache', snaps, T0 + 6 * DAY, { dryRun: false, busy: true });
    expect(busy.removed).toBe(5);
    expect((await repo.listLogs('redis.cache')).some((l) => l.timeline === g0)).toBe(true);
    const r = await trimRedis(repo, 'cache', snaps, T0 + 9 * DAY, { dryRun: false, busy: false });
    // The window base is at 185: the segment 180..190 holds it and stays.
    expect(r).toMatchObject({ kind: 'redis', source: 'cache', removed: 4, keptFrom: `${g1}@185` });
    const left = (await repo.listLogs('redis.cache')).map((l) => l.file).sort();
    expect(left[0]?.startsWith((180).toString(16).padStart(16, '0'))).toBe(true);
    expect(left.length).toBe(2);
  });
});

describe('compactGeneration (redis)', () => {
  it('merges a finished minute of segments into one object with every byte and cut point', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const minute = Date.UTC(2026, 9, 1, 12, 0);
    const bytes = Buffer.from(Array.from({ length: 120 }, (_, i) => i));
    const marks: Mark[] = [];
    for (let i = 0; i < 12; i++) {
      const meta = { v: 1 as const, replid: REPLID, start: 100 + i * 10, end: 110 + i * 10, marks: [[105 + i * 10, minute + i * 1000] as Mark, [110 + i * 10, minute + i * 1000 + 500] as Mark] };
      marks.push(...meta.marks);
      await repo.putLog('redis.cache', 'g', segmentName(meta), encodeSegment({ meta, stream: bytes.subarray(i * 10, i * 10 + 10) }));
    }
    const r = await compactGeneration(repo, 'redis.cache', 'g', minute + 120_000);
    expect(r).toEqual({ merged: 12, into: 1 });
    const logs = await repo.listLogs('redis.cache');
    expect(logs).toHaveLength(1);
    const { chain, gapAt } = chainFrom(100, logs.map((l) => parseSegmentName(l.file)!));
    expect(gapAt).toBeUndefined();
    const seg = decodeSegment((await repo.getLog('redis.cache', 'g', chain[0]!.file))!, 'merged');
    expect(seg.stream).toEqual(bytes);
    expect(seg.meta.marks).toEqual(marks);
  });

  // Repetitive writes compress 30-fold or more: a bound on stored bytes alone merged a
  // minute of them into one object that a compaction and a restore then held whole.
  const compressible = async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const minute = Date.UTC(2026, 9, 1, 12, 0);
    const piece = 8 << 20;
    for (let i = 0; i < 12; i++) {
      const meta = { v: 1 as const, replid: REPLID, start: i * piece, end: (i + 1) * piece, marks: [[(i + 1) * piece, minute + i * 1000] as Mark] };
      await repo.putLog('redis.cache', 'g', segmentName(meta), encodeSegment({ meta, stream: Buffer.alloc(piece, 0x77) }));
    }
    expect((await repo.listLogs('redis.cache')).reduce((n, l) => n + l.size, 0)).toBeLessThan(8 << 20); // all 96 MiB stored in less than 8
    return { repo, after: minute + 120_000 };
  };
  const expectBounded = async (repo: Repository) => {
    const logs = await repo.listLogs('redis.cache');
    const { chain, gapAt } = chainFrom(0, logs.map((l) => parseSegmentName(l.file)!));
    expect(gapAt).toBeUndefined();
    expect(chain.at(-1)!.end).toBe(12 * (8 << 20));
    for (const c of chain) expect(c.end - c.start).toBeLessThanOrEqual(32 << 20);
    expect(chain.length).toBeLessThan(12); // still merged, in pieces
  };
  it('merges compressible segments into objects of at most 32 MiB decoded, as their names tell', async () => {
    const { repo, after } = await compressible();
    await compactGeneration(repo, 'redis.cache', 'g', after);
    await expectBounded(repo);
  });
  it('bounds the decoded size of a merge even when the names do not tell it', async () => {
    const { repo, after } = await compressible();
    await compactLog(repo, 'redis.cache', 'g', after, { ...REDIS_SEGMENT_CODEC, rawBytes: () => 0 });
    await expectBounded(repo);
  });
});
