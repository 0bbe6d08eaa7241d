#!/usr/bin/env bash
# Regenerate the files that are generated from the code, after changing the policy
# schema, a command's options or a policy error message:
#   docs/policy.md, docs/cli.md, tests/data/policies/bad/*.expected
# Tests fail when these are stale; review the diff before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
export PYTHONPATH=$PWD COLUMNS=90
"$py" -m edgeguard check --reference > docs/policy.md
"$py" -m edgeguard manpage --markdown > docs/cli.md
for f in tests/data/policies/bad/*.yaml; do
  "$py" -m edgeguard check "$f" 2>&1 | grep -v ' error(s)$' | sed "s|$f|FILE|" > "${f%.yaml}.expected" || true
done
git status --short docs tests/data/policies
