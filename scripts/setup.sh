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
.venv/bin/pip install -q -e ".[dev]"
[ -f bench/requirements.txt ] && [ -n "${EDGEGUARD_BENCH:-}" ] && .venv/bin/pip install -q -r bench/requirements.txt
echo "setup.sh: ready ($(.venv/bin/edgeguard --version))"
