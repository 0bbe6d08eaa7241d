#!/usr/bin/env bash
# The README's first command: install everything, then show edgeguard working on its
# embedded default policy. Starts the real daemon, makes things happen that it reacts
# to (one part per capability in demo/NN-*.sh), prints the audit records and verifies
# the hash chain, then removes everything it created.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh

export DEMO_TMP; DEMO_TMP=$(mktemp -d /tmp/edgeguard-demo.XXXXXX)
DEMO_CLEANUP=""
# shellcheck source=demo/lib.sh
source demo/lib.sh
finish() {
  eg_stop
  eval "${DEMO_CLEANUP:-true}" || true
  rm -rf "$DEMO_TMP"
}
trap finish EXIT

for part in demo/[0-9][0-9]-*.sh; do
  # shellcheck disable=SC1090
  source "$part"
  eg_stop
done

say "the audit trail (ECS JSON lines, hash-chained): $AUDIT_DIR"
run "$EG" audit tail -n 200 "$AUDIT_DIR"
say "verify the chain"
run "$EG" audit verify "$AUDIT_DIR"
