/** A recoverable window (engine/window.ts) as lines for a person: `lifeboat window` and `lifeboat recover` print it. */
import type { RecoverableWindow, WindowDrill } from '../../engine/window.js';
import { forTerminal } from '../../util/terminal.js';

const seconds = (s: number | null) => (s === null ? '—' : s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`);

export function drillLine(d: WindowDrill | null): string {
  if (!d) return 'never drilled';
  return `${d.ok ? 'passed' : 'FAILED'} ${d.time}, RTO ${seconds(d.rto_seconds)}${d.error ? ` (${forTerminal(d.error)})` : ''}`;
}

export function windowLines(w: RecoverableWindow, indent = ''): string[] {
  const out: string[] = [];
  const label = w.kind === 'group' ? `group ${w.name}` : `${w.kind}:${w.name}`;
  out.push(`${indent}${forTerminal(label)}`);
  out.push(`${indent}  earliest  ${w.earliest ?? '—'}`);
  out.push(`${indent}  latest    ${w.latest ?? '—'}`);
  out.push(`${indent}  moments   ${w.continuous ? 'any moment inside the log coverage' : `only the ${w.kind === 'group' ? 'points' : 'backups'} below`}`);
  const snaps = w.snapshots.slice(-8);
  out.push(`${indent}  ${w.kind === 'group' ? 'points' : 'backups'} (${w.snapshots.length}${w.snapshots.length > snaps.length ? `, newest ${snaps.length}` : ''}):`);
  for (const s of snaps) out.push(`${indent}    ${s.short_id}  ${s.consistent_at}`);
  if (w.coverage.length > 0) {
    out.push(`${indent}  log coverage:`);
    for (const c of w.coverage.slice(-8)) out.push(`${indent}    ${c.log.padEnd(11)} ${c.from} → ${c.to}${c.generation ? `  (${forTerminal(c.generation)})` : ''}`);
  }
  if (w.gaps.length > 0) {
    out.push(`${indent}  gaps:`);
    for (const g of w.gaps) out.push(`${indent}    ${g.from} → ${g.to}: ${forTerminal(g.reason)}`);
  } else if (w.continuous) out.push(`${indent}  gaps: none`);
  out.push(`${indent}  last drill      ${drillLine(w.last_drill)}`);
  if (w.last_verified_drill && w.last_verified_drill.time !== w.last_drill?.time) out.push(`${indent}  last passed     ${drillLine(w.last_verified_drill)}`);
  for (const n of w.notes) out.push(`${indent}  note: ${forTerminal(n)}`);
  for (const m of w.members ?? []) out.push(...windowLines(m, `${indent}  `));
  return out;
}
