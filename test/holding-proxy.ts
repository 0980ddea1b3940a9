/**
 * An HTTP proxy on 127.0.0.1 in front of a test server (s3rver, azurite) that
 * records every request (method, URL, headers, and the MD5 and length of the body
 * it forwarded) and, while `holding`, leaves the bodies of PUT requests unread:
 * the client then has sent what the sockets take and waits, so a test can look at
 * what the client holds in memory while an upload is under way.
 */
import { createHash } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** Hex MD5 and length of the body as forwarded (set once it has all passed). */
  md5?: string;
  bytes?: number;
  /** This request's connection was cut in the middle of its body (cutFirst). */
  cut?: boolean;
}

export interface HoldingProxy {
  /** The target's URL with the proxy's host and port (same path). */
  endpoint: string;
  requests: Recorded[];
  /** PUT requests whose body is being held. */
  held(): number;
  /** Lets every held body through, and the later ones at once. */
  release(): void;
  close(): Promise<void>;
}

/**
 * `holding`: hold PUT bodies until release(). `cutFirst`: the connections of the first
 * this many PUT requests with a body are cut once 1 MiB of it has passed (a dropped
 * connection in the middle of an upload).
 */
export async function holdingProxy(target: URL, opts: { holding?: boolean; cutFirst?: number }): Promise<HoldingProxy> {
  const requests: Recorded[] = [];
  let holding = opts.holding ?? false;
  let toCut = opts.cutFirst ?? 0;
  const waiting: Array<() => void> = [];
  const forward = (req: IncomingMessage, res: ServerResponse, rec: Recorded) => {
    const hash = createHash('md5');
    let bytes = 0;
    const cut = req.method === 'PUT' && Number(req.headers['content-length'] ?? 0) > 1 << 20 && toCut > 0;
    if (cut) toCut--;
    const fwd = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    fwd.on('error', () => res.destroy());
    req.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
      if (cut && bytes >= 1 << 20) {
        rec.cut = true;
        fwd.destroy();
        req.socket.destroy();
      }
    });
    req.on('end', () => {
      rec.md5 = hash.digest('hex');
      rec.bytes = bytes;
    });
    req.pipe(fwd);
  };
  const server = createServer((req, res) => {
    const rec: Recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    requests.push(rec);
    if (holding && req.method === 'PUT' && Number(req.headers['content-length'] ?? 0) > 0) {
      req.pause();
      waiting.push(() => forward(req, res, rec));
    } else {
      forward(req, res, rec);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `${target.protocol}//127.0.0.1:${port}${target.pathname === '/' ? '' : target.pathname}`,
    requests,
    held: () => waiting.length,
    release: () => {
      holding = false;
      for (const go of waiting.splice(0)) go();
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Bytes in live ArrayBuffers while nothing moves (before an upload starts, or while the
 * proxy holds its bodies): the least of a few looks 50 ms apart. The counter is the
 * whole process's, test files share a worker, and buffers a collection found dead may
 * still be counted until they are swept, so a single look can include garbage (an
 * upload alone counted ~17 MB once, 1.3 MB this way; in a full file run a single look
 * before it was 15 MB too high).
 */
export async function settledArrayBuffers(): Promise<number> {
  let least = Infinity;
  for (let i = 0; i < 5; i++) {
    least = Math.min(least, liveArrayBuffers());
    await new Promise((r) => setTimeout(r, 50));
  }
  return least;
}

/** Bytes in ArrayBuffers (Buffers) still referenced, after a full garbage collection. */
function liveArrayBuffers(): number {
  gc();
  return process.memoryUsage().arrayBuffers;
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
