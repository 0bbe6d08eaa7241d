#!/usr/bin/env bash
# Run the whole test suite: unit (no root), linux (root: loop, netns, nft, udevd,
# rsyslog), lab (QEMU VM). Extra arguments go to pytest, e.g. `-m "not lab"`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
