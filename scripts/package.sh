#!/usr/bin/env bash
# Build dist/edgeguard_<version>_<arch>.deb from this tree, on Debian 12, as root or not.
#
# The program goes into its own Python environment at its final path, /usr/lib/edgeguard
# (a venv on Debian's /usr/bin/python3 holding edgeguard and its bundled dependencies:
# pyroute2 >= 0.9.7 and orjson are not in bookworm), made in a staging directory and
# relocated (shebangs rewritten, bytecode compiled for the final path), then packed with
# dpkg-deb. Why not dh-virtualenv: docs/install.md, "How the package is built".
#
# Build dependencies (installed with apt-get when missing and run as root): python3,
# python3-venv, python3-dev, gcc, dpkg-dev. Python packages come from PyPI (or pip's
# configured index). The network hot path is compiled with mypyc for Debian's Python
# (setup.py; docs/network-capture.md, "Performance"); EDGEGUARD_PURE=1 builds a pure
# package.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
start=$(date +%s)
PY=/usr/bin/python3        # Debian's interpreter: the venv links to it on the target
PREFIX=/usr/lib/edgeguard

need=()
for p in python3 python3-venv python3-dev gcc dpkg-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "package.sh: missing build dependencies ${need[*]} (run as root to install them)" >&2
    exit 2
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

version=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
arch=$(dpkg --print-architecture)
work=$(mktemp -d /tmp/edgeguard-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
stage="$work/root"
venv="$stage$PREFIX"

# 1. the environment: edgeguard (a wheel of this tree) and its runtime dependencies
"$PY" -m venv "$venv"
#    (from a clean copy: no editable build's compiled modules or build/ directory)
src="$work/src"
mkdir -p "$src"
tar -C "$here" --exclude=./.venv --exclude=./build --exclude=./dist --exclude=./.git \
  --exclude='*.so' --exclude=__pycache__ -cf - . | tar -C "$src" -xf -
"$venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir --no-compile "$src"
compiled=$(find "$venv/lib" -path '*/edgeguard/*' -name '*.so' | wc -l)
if [ "${EDGEGUARD_PURE:-}" != 1 ] && ! "$venv/bin/python" -c \
    'import sys, edgeguard.net as n; sys.exit(not n.compiled())'; then
  echo "package.sh: the network modules did not compile (EDGEGUARD_PURE=1 for a pure package)" >&2
  exit 1
fi
echo "package.sh: $compiled compiled modules"
"$venv/bin/pip" uninstall -q -y pip setuptools >/dev/null 2>&1 || true
rm -f "$venv"/bin/activate* "$venv"/bin/Activate.ps1 "$venv"/bin/pip*
# 2. relocate: console-script shebangs name the staging path
for f in "$venv"/bin/*; do
  if [ -f "$f" ] && [ ! -L "$f" ] && head -c 2 "$f" | grep -q '#!'; then
    sed -i "1s|^#!$stage|#!|" "$f"
  fi
done
sed -i "s|$stage||g" "$venv/pyvenv.cfg"   # "command = … -m venv <stage>/usr/lib/edgeguard"
find "$venv" -name __pycache__ -prune -exec rm -rf {} +
if grep -rIl --exclude='*.pyc' "$stage" "$venv" >"$work/leaks"; then
  echo "package.sh: the staging path leaked into:" >&2; cat "$work/leaks" >&2; exit 1
fi
# 3. bytecode for the final path (the hardened unit's /usr is read-only: no cache later),
#    checked by a hash of the source, not its mtime: dpkg-deb clamps every mtime in the
#    archive to SOURCE_DATE_EPOCH, which made timestamp-checked .pyc files stale at once
#    (every start compiled from source; docs/startup.md, "Bytecode")
"$PY" -m compileall -q -j 0 --invalidation-mode checked-hash -s "$stage" -p / "$venv/lib" >/dev/null

# 4. system files
install -d "$stage/usr/bin" "$stage/usr/lib/udev/rules.d" "$stage/usr/lib/systemd/system" \
  "$stage/etc/edgeguard" "$stage/usr/share/man/man8" "$stage/usr/share/doc/edgeguard" \
  "$stage/DEBIAN"
ln -s "$PREFIX/bin/edgeguard" "$stage/usr/bin/edgeguard"
install -m 0644 rules/61-edgeguard-media.rules rules/72-edgeguard-media-uaccess.rules "$stage/usr/lib/udev/rules.d/"
install -m 0644 systemd/edgeguard.service systemd/edgeguard-ship.service "$stage/usr/lib/systemd/system/"
"$venv/bin/python" -c 'import sys; from edgeguard.install import policy_template; sys.stdout.buffer.write(policy_template(None))' \
  >"$stage/etc/edgeguard/policy.yaml"
chmod 0644 "$stage/etc/edgeguard/policy.yaml"
"$venv/bin/python" -m edgeguard manpage | gzip -9n >"$stage/usr/share/man/man8/edgeguard.8.gz"
for d in README.md docs/install.md docs/policy.md docs/cli.md docs/findings.md docs/media.md docs/security.md docs/audit.md; do
  install -m 0644 "$d" "$stage/usr/share/doc/edgeguard/"
done
gzip -9n <CHANGELOG.md >"$stage/usr/share/doc/edgeguard/changelog.gz"
cat >"$stage/usr/share/doc/edgeguard/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: edgeguard

Files: *
License: GPL-3.0-or-later
 On Debian systems the full text is in /usr/share/common-licenses/GPL-3.
COPY
find "$stage" -path "$stage/DEBIAN" -prune -o -type d -exec chmod 0755 {} +
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  packaging/debian/control.in >"$stage/DEBIAN/control"

mkdir -p dist
out="dist/edgeguard_${version}_${arch}.deb"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
"$PY" packaging/check_bytecode.py "$out"   # every module's .pyc is used as installed
echo "package.sh: $out ($(du -h "$out" | cut -f1), ${size} KiB installed) in $(( $(date +%s) - start )) s"
