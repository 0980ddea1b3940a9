#!/usr/bin/env bash
# Lifeboat's PostgreSQL benchmark, the same steps as ../shared/bench/pg-anchors.sh
# (pgBackRest) on the same pgbench cluster size, so the two can be read side by side:
# full backup, an unchanged second backup, WAL archiving under pgbench load, restore
# to a point in time and replay, and the archive-push cost per segment.
# Usage: bash bench/pg-bench.sh            (SCALE=50 LOAD_S=20 by default)
#        WITH_PGBACKREST=1 bash bench/pg-bench.sh   also runs the pgBackRest anchor first
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
W=${PGB_DIR:-/tmp/lb-pgbench-lifeboat}; SCALE=${SCALE:-50}; PORT=${PORT:-55434}
BIN=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
[ -f "$HERE/dist/cli/main.js" ] || (cd "$HERE" && npx tsc -p .)
if [ -n "${WITH_PGBACKREST:-}" ]; then
  command -v pgbackrest >/dev/null || { apt-get update -qq && apt-get install -y -qq pgbackrest >/dev/null; }
  echo "== pgBackRest (../shared/bench/pg-anchors.sh)"
  SCALE=$SCALE bash "${SHARED_BENCH:-$HERE/../shared/bench}/pg-anchors.sh"
  echo "== Lifeboat"
fi
as_pg() { runuser -u postgres -- "$@"; }
LB=(as_pg node "$HERE/bin/lifeboat.js" --repo "$W/repo" --password-file "$W/pw")
rm -rf "$W"; mkdir -p "$W"; chown postgres "$W"; chmod 700 "$W"
echo bench > "$W/pw"; chown postgres "$W/pw"; chmod 600 "$W/pw"
as_pg "$BIN/initdb" -D "$W/data" -A trust >/dev/null
cat >> "$W/data/postgresql.conf" <<CONF
port=$PORT
unix_socket_directories='$W'
archive_mode=on
archive_command='node $HERE/bin/lifeboat.js pg archive-push --name bench --repo $W/repo --password-file $W/archive.key %p'
archive_timeout=60
max_wal_size=4GB
CONF
"${LB[@]}" init -q
# archive_command opens with a generated password (docs/keys.md): no slow scrypt per segment.
"${LB[@]}" key add --append-only --generate-password-file "$W/archive.key" -q
as_pg "$BIN/pg_ctl" -D "$W/data" -l "$W/pg.log" -w start >/dev/null
psql=(as_pg psql -h "$W" -p $PORT -d postgres -qtAX)
now() { date +%s.%N; }
s=$(now); as_pg "$BIN/pgbench" -h "$W" -p $PORT -i -s $SCALE -q postgres >/dev/null 2>&1; echo "load: $(echo "$(now)-$s" | bc)s db=$("${psql[@]}" -c "select pg_size_pretty(pg_database_size('postgres'))")"
s=$(now); "${LB[@]}" pg backup --name bench --dsn "postgresql://postgres@127.0.0.1:$PORT/postgres" -q
echo "lifeboat full backup: $(echo "$(now)-$s" | bc)s repo=$(du -sm "$W/repo" | cut -f1)MB"
before=$(du -sk "$W/repo/data" | cut -f1)
s=$(now); "${LB[@]}" pg backup --name bench --dsn "postgresql://postgres@127.0.0.1:$PORT/postgres" -q
echo "lifeboat second backup (no load in between): $(echo "$(now)-$s" | bc)s added=$(( ($(du -sk "$W/repo/data" | cut -f1) - before) / 1024 ))MB"
s=$(now); as_pg "$BIN/pgbench" -h "$W" -p $PORT -T ${LOAD_S:-20} -c 4 postgres 2>/dev/null | grep -E "^tps"
target=$("${psql[@]}" -c "select now()"); want=$("${psql[@]}" -c "select sum(abalance) from pgbench_accounts")
as_pg "$BIN/pgbench" -h "$W" -p $PORT -T 5 -c 4 postgres >/dev/null 2>&1
last=$("${psql[@]}" -c "select pg_walfile_name(pg_switch_wal())")
s=$(now); until [ "$("${psql[@]}" -c "select coalesce(last_archived_wal,'') >= '$last' from pg_stat_archiver")" = t ]; do sleep 0.1; done
echo "archive backlog after load: $(echo "$(now)-$s" | bc)s; archived: $("${psql[@]}" -c "select archived_count||' segs, failed '||failed_count from pg_stat_archiver")"
seg=$(ls "$W/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | head -1)
# A new source name each time: each push stores the segment, as a new segment's would.
for how in generated chosen; do
  pw=$W/archive.key; [ $how = chosen ] && pw=$W/pw
  s=$(now); for i in 1 2 3 4 5; do as_pg node "$HERE/bin/lifeboat.js" pg archive-push --name "cost-$how-$i" --repo "$W/repo" --password-file "$pw" -q "$W/data/pg_wal/$seg"; done
  echo "archive-push per segment ($how password): $(echo "($(now)-$s)/5" | bc -l | cut -c1-5)s"
done
as_pg "$BIN/pg_ctl" -D "$W/data" -m fast -w stop >/dev/null
rm -rf "$W/data"
s=$(now); as_pg /usr/bin/time -f "lifeboat restore CPU: %U s user, %S s system, peak RSS %M KB" "${LB[@]:1}" pg restore --name bench --target-dir "$W/data" --time "$(date -u -d "$target" +%Y-%m-%dT%H:%M:%S.%6NZ)" -q; r=$(echo "$(now)-$s" | bc)
# The restored copy comes up on a port of its own (docs/postgres.md), not the primary's.
PORT=$(sed -n 's/^port = //p' "$W/data/postgresql.auto.conf" | tail -1)
psql=(as_pg psql -h "$W" -p "$PORT" -d postgres -qtAX)
s=$(now); as_pg "$BIN/pg_ctl" -D "$W/data" -l "$W/pg2.log" -w -t 600 start >/dev/null
until [ "$("${psql[@]}" -c "select pg_is_in_recovery()")" = f ]; do sleep 0.2; done
echo "lifeboat restore: ${r}s, replay to target: $(echo "$(now)-$s" | bc)s"
got=$("${psql[@]}" -c "select sum(abalance) from pgbench_accounts")
echo "PITR check: want=$want got=$got $([ "$want" = "$got" ] && echo OK || echo MISMATCH)"
as_pg "$BIN/pg_ctl" -D "$W/data" -m fast -w stop >/dev/null
