/**
 * Turning WAL positions into a proven moment. A sample (t, L) says: L was the server's
 * WAL position read after moment t, so every transaction committed at or before t
 * ends at or before L. Once the repository holds WAL through L, t is proven: that is
 * `archivedThrough` (engine/archive-status.ts). An idle server whose position equals
 * what was shipped is proven up to the latest sample (RPO about one sample interval),
 * and a server whose WAL is not being shipped is proven to nothing newer, however
 * long ago the last segment went.
 */

/** Samples waiting for their proof; an older one is implied by any newer proven one, so dropping the oldest loses nothing. */
const MAX_SAMPLES = 1000;

export class LsnWitness {
  private samples: Array<{ t: number; lsn: bigint; tag: string | undefined }> = [];
  private proven: number | null = null;
  /** The tag of the newest proven sample (what else was read with its position). */
  provenTag: string | undefined;

  /** Records that the server was at `lsn` at some point after moment `t` (ms since the epoch). */
  observe(t: number, lsn: bigint, tag?: string): void {
    const last = this.samples[this.samples.length - 1];
    // A position that went backwards is another server (a restored copy on the
    // address): what it says proves nothing about earlier samples.
    if (last && lsn < last.lsn) {
      this.samples = [];
      this.provenTag = undefined;
    }
    this.samples.push({ t, lsn, tag });
    if (this.samples.length > MAX_SAMPLES) this.samples.shift();
  }

  /** The newest sample moment whose position the repository holds, given WAL shipped through `shipped`. */
  provenThrough(shipped: bigint): number | null {
    let i = 0;
    while (i < this.samples.length && (this.samples[i] as { lsn: bigint }).lsn <= shipped) {
      const s = this.samples[i] as { t: number; tag: string | undefined };
      if (this.proven === null || s.t >= this.proven) {
        this.proven = s.t;
        this.provenTag = s.tag;
      }
      i++;
    }
    if (i > 0) this.samples = this.samples.slice(i);
    return this.proven;
  }

  /** The newest proven moment so far. */
  get through(): number | null {
    return this.proven;
  }
}

/** The LSN at the start of a segment: segments are `segSize` bytes of the WAL's byte stream. */
export function segmentStart(segno: bigint, segSize: number): bigint {
  return segno * BigInt(segSize);
}

/** The segment number an LSN falls in (an LSN on a boundary starts the next segment). */
export function segmentOf(lsn: bigint, segSize: number): bigint {
  return lsn / BigInt(segSize);
}
