#!/usr/bin/env bash
# Regenerate the files that are generated from the code, after changing the policy
# schema, a command's options or a policy error message:
#   docs/policy.md, docs/cli.md, tests/data/policies/bad/*.expected
# Tests fail when these are stale; review the diff before committing it. Each file is
# written to a temporary one first: a crash leaves the old file, not a truncated one.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD COLUMNS=90
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$py" -m edgeguard check --reference > "$tmp" && cp "$tmp" docs/policy.md
"$py" -c 'import sys; from edgeguard.findings import with_catalogue; sys.stdout.write(with_catalogue(open("docs/findings.md").read()))' > "$tmp" && cp "$tmp" docs/findings.md
"$py" -m edgeguard manpage --markdown > "$tmp" && cp "$tmp" docs/cli.md
for f in tests/data/policies/bad/*.yaml; do
  rc=0
  "$py" -m edgeguard check "$f" > "$tmp" 2>&1 || rc=$?
  if [ "$rc" != 1 ] && [ "$rc" != 2 ]; then  # 1 policy errors, 2 unreadable: anything else crashed
    echo "regen-docs: edgeguard check $f exited $rc:" >&2; cat "$tmp" >&2; exit 1
  fi
  grep -v ' error(s)$' "$tmp" | sed "s|$f|FILE|" > "${f%.yaml}.expected" || true
done
git status --short docs tests/data/policies
