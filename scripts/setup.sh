#!/usr/bin/env bash
# Install everything edgeguard and its tests need on Debian 12, as root:
# the Debian packages listed in ci/apt.d/*.txt, a venv in .venv, and the package.
# Idempotent: a second run only checks.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 2
fi

mapfile -t pkgs < <(sed -e 's/#.*//' -e '/^\s*$/d' ci/apt.d/*.txt | tr -s ' \t' '\n' | sed '/^$/d' | sort -u)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
# The package, editable. Unless EDGEGUARD_PURE=1, setup.py compiles the network hot path
# with mypyc into the tree (docs/network-capture.md, "Performance"); that takes a minute
# or two, so it is redone only when the compiled sources, setup.py or pyproject.toml
# changed (a stamp in .venv). EDGEGUARD_PURE=1 removes the compiled modules.
mode=compiled; [ "${EDGEGUARD_PURE:-}" = 1 ] && mode=pure
stamp=.venv/edgeguard-build.stamp
digest=$( { echo "$mode"; .venv/bin/python -V; cat setup.py pyproject.toml \
  edgeguard/net/*.py edgeguard/net/detect/*.py; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ] || ! .venv/bin/python -c 'import edgeguard' 2>/dev/null; then
  find edgeguard -name '*.so' -delete; rm -f ./*__mypyc.*.so; rm -rf build
  if [ "$mode" = pure ]; then
    .venv/bin/pip install -q -e ".[dev]"
  else
    t0=$(date +%s)
    .venv/bin/pip install -q "setuptools>=77" "mypy>=1.8"
    .venv/bin/pip install -q --no-build-isolation -e ".[dev]"
    echo "setup.sh: compiled the network hot path in $(( $(date +%s) - t0 )) s"
  fi
  echo "$digest" >"$stamp"
fi
[ -f bench/requirements.txt ] && [ -n "${EDGEGUARD_BENCH:-}" ] && .venv/bin/pip install -q -r bench/requirements.txt
echo "setup.sh: ready ($(.venv/bin/edgeguard --version), $(.venv/bin/python -c 'import edgeguard.net as n; print("compiled" if n.compiled() else "pure")'))"
