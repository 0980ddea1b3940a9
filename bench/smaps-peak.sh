#!/usr/bin/env bash
# Where a process's resident memory is at its largest (issue 19): reads /proc/PID/smaps
# every 0.5 s while PID lives, keeps the reading with the largest total, and prints it
# summed by mapping (anonymous mappings by size: V8's heap pages are 256K ones, malloc's
# arenas and large buffers the odd sizes; file mappings by name, `node` is the binary).
#   node bin/lifeboat.js backup ... & bash bench/smaps-peak.sh $!
set -euo pipefail
PID=$1; best=0; out=$(mktemp)
summary() {
  python3 - "$PID" <<'PY'
import sys, re, collections
rows, cur = [], None
for line in open(f'/proc/{sys.argv[1]}/smaps'):
    m = re.match(r'^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$', line)
    if m:
        cur = {'size': int(m[2], 16) - int(m[1], 16), 'name': m[3], 'rss': 0}; rows.append(cur)
    elif line.startswith('Rss:'):
        cur['rss'] = int(line.split()[1])
by = collections.Counter()
for r in rows:
    s = r['size']
    by[r['name'].split('/')[-1] if r['name'] else 'anon ' + ('%dK' % (s >> 10) if s < 1 << 20 else '%dM' % (s >> 20))] += r['rss']
print('total %d' % sum(by.values()))
for k, v in by.most_common(15): print('%8.1f MB  %s' % (v / 1024, k))
PY
}
while kill -0 "$PID" 2>/dev/null; do
  s=$(summary 2>/dev/null || true); t=$(echo "$s" | sed -n 's/^total //p')
  if [ -n "$t" ] && [ "$t" -gt "$best" ]; then best=$t; echo "$s" > "$out"; fi
  sleep 0.5
done
echo "peak resident: $((best / 1024)) MB"; tail -n +2 "$out"; rm -f "$out"
