/**
 * Owning pg_receivewal. A streamer killed with SIGKILL cannot stop its receiver, and a
 * receiver left running holds the replication slot, so every later streamer's receiver
 * fails "slot is active". Three defences, each enough on its own in the common case:
 *
 * 1. The receiver dies with its streamer: it is started through util-linux `setpriv
 *    --pdeathsig KILL` (argv only), so the kernel kills it when the streamer goes.
 *    With --synchronous every byte it received is already on disk, so SIGKILL loses
 *    nothing a graceful stop would have kept.
 * 2. A pid file in the spool names the streamer and its receiver (with their start
 *    times from /proc, so a reused pid is not mistaken for them). The next streamer
 *    kills a receiver that outlived its streamer, and takes the spool over from a
 *    streamer whose parent is gone (a daemon that was killed); a streamer that is still
 *    owned is left alone and the new one refuses to start.
 * 3. The receiver connects with application_name `lifeboat-stream-PID@HOST`. When the
 *    slot is active for a walsender whose streamer on this host is gone, the slot is
 *    freed with pg_terminate_backend; a slot held by anything else is reported, never
 *    taken.
 */
import { readFileSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type pg from 'pg';
import { LifeboatError, errno } from '../../errors.js';
import { hasExited, procStat } from '../../util/tied-child.js';

const PID_FILE = 'lifeboat-stream.pid';
/** PostgreSQL keeps NAMEDATALEN - 1 bytes of an application_name. */
const APP_NAME_MAX = 63;

interface ProcRef {
  pid: number;
  /** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
  start: string;
}

interface PidFile {
  streamer: ProcRef;
  parent: ProcRef | null;
  receiver: ProcRef | null;
}

/**
 * A running process's parent and start time; undefined once it is gone. A process
 * that has exited but that its parent has not reaped yet (a zombie, state Z, or X) is
 * gone: it holds nothing, and its /proc entry with the same start time stays until the
 * parent gets round to it. Taken for alive, a streamer killed a moment ago under a
 * parent slow to reap (runuser on a loaded host) made its successor refuse with LOCKED.
 */
function stat(pid: number): { ppid: number; start: string } | undefined {
  const s = procStat(pid);
  return s === undefined || hasExited(s) ? undefined : s;
}

function ref(pid: number): ProcRef | null {
  const s = stat(pid);
  return s ? { pid, start: s.start } : null;
}

/** The process is still the one recorded (same pid, same start time). */
function same(r: ProcRef | null | undefined): boolean {
  return !!r && stat(r.pid)?.start === r.start;
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** Is this pid a running `lifeboat pg stream`? */
function isStreamer(pid: number): boolean {
  const argv = cmdline(pid);
  return argv.some((a, i) => a === 'pg' && argv[i + 1] === 'stream');
}

async function waitGone(r: ProcRef, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (same(r)) {
    if (Date.now() > until) return false;
    await new Promise((res) => setTimeout(res, 50));
  }
  return true;
}

async function stop(r: ProcRef, graceMs: number): Promise<void> {
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(r.pid, sig);
    } catch (err) {
      if (errno(err) !== 'ESRCH') throw err;
    }
  };
  if (graceMs > 0) {
    kill('SIGTERM');
    if (await waitGone(r, graceMs)) return;
  }
  kill('SIGKILL');
  if (!(await waitGone(r, 5000))) {
    throw new LifeboatError('FAILED', `process ${r.pid} survived SIGKILL`, { hint: 'it may be stuck in the kernel (a hung disk or NFS mount)' });
  }
}

/** The application_name a streamer's receiver connects with. */
export function receiverAppName(pid = process.pid, host = os.hostname()): string {
  return `lifeboat-stream-${pid}@${host}`.slice(0, APP_NAME_MAX);
}

/**
 * The spool belongs to one streamer at a time. Taking it kills what a dead streamer
 * left behind; a live, still-owned streamer makes this one refuse (LOCKED).
 */
export class SpoolClaim {
  private constructor(
    private readonly file: string,
    private state: PidFile,
  ) {}

  static async take(spool: string): Promise<SpoolClaim> {
    const file = path.join(spool, PID_FILE);
    const me = ref(process.pid);
    const ppid = stat(process.pid)?.ppid;
    const claim = new SpoolClaim(file, { streamer: me ?? { pid: process.pid, start: '' }, parent: ppid ? ref(ppid) : null, receiver: null });
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await fs.writeFile(file, JSON.stringify(claim.state), { flag: 'wx', mode: 0o600 });
        return claim;
      } catch (err) {
        if (errno(err) !== 'EEXIST') throw err;
      }
      let old: PidFile | undefined;
      try {
        old = JSON.parse(await fs.readFile(file, 'utf8')) as PidFile;
      } catch {
        old = undefined; // torn or unreadable: nothing to go on, so nothing to keep
      }
      if (old && old.streamer.pid !== process.pid && same(old.streamer)) {
        // A streamer whose parent still runs is someone's service: not ours to stop.
        if (!old.parent || same(old.parent)) {
          throw new LifeboatError('LOCKED', `another pg stream (pid ${old.streamer.pid}) is streaming into ${path.dirname(file)}`, {
            hint: 'stop it first, or give this one its own --spool and --slot',
          });
        }
        await stop(old.streamer, 10_000);
      }
      if (old?.receiver && same(old.receiver)) await stop(old.receiver, 0);
      await fs.rm(file, { force: true });
    }
    throw new LifeboatError('LOCKED', `could not claim the spool ${path.dirname(file)}`, { hint: 'another pg stream keeps claiming it' });
  }

  /** Records the receiver just started, so a successor can stop it if this process dies. */
  async receiverStarted(pid: number | undefined): Promise<void> {
    this.state = { ...this.state, receiver: pid === undefined ? null : ref(pid) };
    const tmp = `${this.file}.${process.pid}`;
    await fs.writeFile(tmp, JSON.stringify(this.state), { mode: 0o600 });
    await fs.rename(tmp, this.file);
  }

  async release(): Promise<void> {
    await fs.rm(this.file, { force: true });
  }
}

export interface SlotUser {
  /** The walsender's backend pid. */
  pid: number;
  applicationName: string | null;
}

/** Who holds the slot now; undefined when nobody does (or there is no such slot). */
export async function slotUser(client: pg.Client, slot: string): Promise<SlotUser | undefined> {
  const r = await client.query<{ pid: number | null; app: string | null }>(
    `select s.active_pid as pid, a.application_name as app
       from pg_replication_slots s left join pg_stat_activity a on a.pid = s.active_pid
      where s.slot_name = $1`,
    [slot],
  );
  const row = r.rows[0];
  return row?.pid ? { pid: row.pid, applicationName: row.app } : undefined;
}

export type SlotVerdict = { take: true; why: string } | { take: false; why: string };

/** May this streamer free the slot from its current user? Only a receiver whose lifeboat streamer on this host is gone (or is this one). */
export function judgeSlotUser(user: SlotUser, host = os.hostname()): SlotVerdict {
  const m = /^lifeboat-stream-(\d+)@(.*)$/.exec(user.applicationName ?? '');
  if (!m) return { take: false, why: `it is held by walsender ${user.pid} (application_name "${user.applicationName ?? ''}"), not by a lifeboat streamer` };
  const pid = Number(m[1]);
  // Names are cut at 63 bytes: compare with what a streamer of that pid here would send.
  if (user.applicationName !== receiverAppName(pid, host)) return { take: false, why: `it is held by a pg stream on host ${m[2] ?? ''}` };
  if (pid === process.pid) return { take: true, why: 'an earlier receiver of this streamer still holds it' };
  if (isStreamer(pid)) return { take: false, why: `pg stream pid ${pid} on this host is using it` };
  return { take: true, why: `its streamer (pid ${pid}) is gone` };
}

/** Ends the walsender holding the slot and waits until the slot is free. */
export async function freeSlot(client: pg.Client, slot: string, user: SlotUser, waitMs = 10_000): Promise<void> {
  await client.query('select pg_terminate_backend($1)', [user.pid]);
  const until = Date.now() + waitMs;
  while ((await slotUser(client, slot))?.pid === user.pid) {
    if (Date.now() > until) throw new LifeboatError('SOURCE_UNAVAILABLE', `walsender ${user.pid} still holds slot ${slot}`, { hint: 'the role needs to be allowed to signal it (same role, or pg_signal_backend)' });
    await new Promise((r) => setTimeout(r, 50));
  }
}
