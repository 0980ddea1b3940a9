#!/usr/bin/env bash
# Prepares a fresh machine for `npm test`: builds the CLI the end-to-end tests run,
# and installs the Debian packages tests need when they are missing (as root with
# apt-get), or says exactly what to install when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
# The same joined into a few files, which start faster (scripts/bundle.mjs).
node scripts/bundle.mjs
# The dashboard's browser modules (src/web/) the daemon serves.
npx tsc -p tsconfig.web.json
# The tests are strict TypeScript too.
npx tsc -p tsconfig.test.json

# Debian packages the suite needs, as "command:package". prometheus brings promtool
# (docs/ops rules are checked with it) and a real Prometheus the alert tests scrape
# the daemon with; age, gpg and SoftHSM2 wrap and unwrap key slots (test/integration/key-slots.test.ts);
# stress-ng loads the CPUs beside the quickstart (test/e2e/quickstart-load.test.ts);
# util-linux `script` (Debian bsdutils) gives test/e2e/progress.test.ts a pseudo-terminal; tmux drives
# `lifeboat recover`'s questions in test/e2e/recover.test.ts.
need=()
for pair in ${LIFEBOAT_TEST_DEBS:-mkfifo:coreutils script:bsdutils restic:restic rclone:rclone chromium:chromium promtool:prometheus age:age gpg:gnupg softhsm2-util:softhsm2 stress-ng:stress-ng tmux:tmux}; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "pretest: installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "pretest: please install: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
