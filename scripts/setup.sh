#!/usr/bin/env bash
# Installs what the build needs on a fresh machine (Rust, gcc and Python 3.11 with pip are
# assumed); with --python also the venv the Python tests use. Idempotent.
#
# Every Python package comes from a lock in scripts/lock/ (exact versions and hashes), so a
# fresh machine gets the environment CI last passed with; scripts/update-lock.sh moves it.
set -euo pipefail
cd "$(dirname "$0")/.."

# hdf5-metno's `static` feature builds HDF5 from source and needs cmake >= 3.26.
if ! cmake --version 2>/dev/null | awk 'NR==1 { split($3, v, "."); exit !((v[1] > 3) || (v[1] == 3 && v[2] >= 26)) }'; then
  python3 -m pip install --quiet --require-hashes --no-deps -r scripts/lock/build.lock
  hash -r
fi

[ "${1:-}" = "--python" ] || exit 0

# The servers the cluster tests start themselves: sshd and a single-node Slurm (on Debian, as
# root; see the script).
scripts/services/install_debian.sh openssh-server slurm-wlm munge

# The Python side lives in its own venv so the machine's Python stays clean. The venv's own
# pip installs the lock (no upgrade: that would float too); a venv that has drifted from the
# lock (an older lock, a package added by hand) is brought back to it exactly.
VENV=${RUSTRATES_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" scripts/lock/check_env.py scripts/lock/dev.lock 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
    --no-deps -r scripts/lock/dev.lock
  "$VENV/bin/python" scripts/lock/check_env.py --uninstall-extra scripts/lock/dev.lock
fi
"$VENV/bin/python" scripts/lock/check_env.py scripts/lock/dev.lock
