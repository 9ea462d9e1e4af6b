#!/usr/bin/env bash
# Moves the Python locks in scripts/lock/ to the newest versions their .in files allow, then
# runs the Python tests in a venv made from the new dev lock. The new locks are left in the
# work tree for review (git diff scripts/lock); commit them only when the tests pass.
#   scripts/update-lock.sh                   # all locks to the newest versions, then the Python tests
#   scripts/update-lock.sh --no-test         # only re-resolve
#   scripts/update-lock.sh --keep [--no-test]  # keep today's pins, add what a .in file gained
# Run it deliberately: when a dependency's fix or feature is wanted, or every few months; never
# in CI. uv (from PyPI) resolves; pip installs, with hashes, exactly what the lock says.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${RUSTRATES_LOCK_TOOLS:-target/lock-tools}
[ -x "$TOOLS/bin/uv" ] || { python3 -m venv "$TOOLS" && "$TOOLS/bin/pip" install --quiet uv; }
upgrade=--upgrade
test=yes
for arg in "$@"; do
  case $arg in
    --keep) upgrade= ;;
    --no-test) test= ;;
    *) echo "update-lock.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
for input in scripts/lock/*.in; do
  "$TOOLS/bin/uv" pip compile --quiet $upgrade --generate-hashes --no-header \
    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
    "$input" -o "${input%.in}.lock"
done
git --no-pager diff --stat -- scripts/lock || true
[ -n "$test" ] || exit 0

# A venv of its own, so the one in use is not disturbed until the new lock is committed.
export RUSTRATES_VENV=target/lock-check-venv
rm -rf "$RUSTRATES_VENV"
./scripts/setup.sh --python
. scripts/env.sh
VIRTUAL_ENV="$PWD/$RUSTRATES_VENV" "$RUSTRATES_VENV/bin/maturin" develop --quiet
"$RUSTRATES_VENV/bin/python" -m pytest tests/python -q
echo "update-lock.sh: the new locks pass the Python tests; review and commit scripts/lock/*.lock"
