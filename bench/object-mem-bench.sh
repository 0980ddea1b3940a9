#!/usr/bin/env bash
# Peak memory and CPU of a first backup into object storage on this machine: s3rver or
# azurite in a process of its own (not measured), a fresh bucket or container per run,
# builds in the order given (alternate them: old new new old ...). One line per run:
# /usr/bin/time's wall, user, sys and maximum resident set, and the 1-minute load
# average when the run started (the machine may be shared: RSS and CPU are the steady
# figures, wall time is not).
# Usage: OLD=/path/to/old/bin/lifeboat.js NEW=bin/lifeboat.js \
#          bash bench/object-mem-bench.sh s3|azure DATA_DIR old new new old
set -euo pipefail
KIND=${1:?s3 or azure}; DATA=${2:?data directory}; shift 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=${BENCH_DIR:-/tmp/lb-object-mem}; rm -rf "$W"; mkdir -p "$W/server"
export LIFEBOAT_PASSWORD=bench
cd "$ROOT"
case $KIND in
  s3)
    export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
    node --openssl-legacy-provider -e "
const S3rver = require('s3rver');
new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: process.argv[1] }).run().then((a) => console.log('PORT ' + a.port));
" "$W/server" >"$W/server.out" 2>&1 &
    ;;
  azure)
    node node_modules/azurite/dist/src/blob/main.js --blobHost 127.0.0.1 --blobPort 0 --location "$W/server" \
      --silent --skipApiVersionCheck --disableTelemetry --loose >"$W/server.out" 2>&1 &
    ;;
  *) echo "s3 or azure, not $KIND" >&2; exit 2 ;;
esac
SPID=$!
trap 'kill $SPID' EXIT
for _ in $(seq 150); do grep -Eq '^PORT |successfully listens' "$W/server.out" && break; sleep 0.2; done
PORT=$(grep -Eo '^PORT [0-9]+|listens on http://[^:]*:[0-9]+' "$W/server.out" | grep -Eo '[0-9]+$')
if [ "$KIND" = azure ]; then
  # azurite's published development account.
  export AZURE_STORAGE_ACCOUNT=devstoreaccount1 AZURE_STORAGE_ENDPOINT="http://127.0.0.1:$PORT/devstoreaccount1"
  export AZURE_STORAGE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
fi
n=0
for which in "$@"; do
  n=$((n + 1)); c="run$n"
  case $which in old) LB=${OLD:?set OLD} ;; new) LB=${NEW:?set NEW} ;; *) echo "old or new, not $which" >&2; exit 2 ;; esac
  if [ "$KIND" = s3 ]; then
    node -e "
const { S3Client, CreateBucketCommand } = require('@aws-sdk/client-s3');
new S3Client({ endpoint: 'http://127.0.0.1:$PORT', forcePathStyle: true, region: 'us-east-1' }).send(new CreateBucketCommand({ Bucket: '$c' })).catch((e) => { console.error(e); process.exit(1); });"
    REPO="s3:http://127.0.0.1:$PORT/$c/repo"
  else
    node -e "
const { BlobServiceClient, StorageSharedKeyCredential } = require('@azure/storage-blob');
const { AZURE_STORAGE_ENDPOINT: e, AZURE_STORAGE_ACCOUNT: a, AZURE_STORAGE_KEY: k } = process.env;
new BlobServiceClient(e, new StorageSharedKeyCredential(a, k)).getContainerClient('$c').create().catch((e) => { console.error(e); process.exit(1); });"
    REPO="azure:$c/repo"
  fi
  node "$LB" init --repo "$REPO" >/dev/null
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f '%e s wall %U u %S s %M KB' -o "$W/time.txt" node "$LB" backup --repo "$REPO" "$DATA" >"$W/$c.log" 2>&1 ||
    { echo "$which FAILED (see $W/$c.log)"; tail -5 "$W/$c.log"; exit 1; }
  echo "$which $(tail -1 "$W/time.txt") load $load"
  rm -rf "${W:?}/server/$c"
done
