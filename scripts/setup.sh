#!/usr/bin/env bash
# Installs what the build needs on a fresh machine (Rust, gcc and Python 3.11 with pip are
# assumed); with --python also the venv the Python tests use. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# hdf5-metno's `static` feature builds HDF5 from source and needs cmake >= 3.26.
if ! cmake --version 2>/dev/null | awk 'NR==1 { split($3, v, "."); exit !((v[1] > 3) || (v[1] == 3 && v[2] >= 26)) }'; then
  python3 -m pip install --quiet "cmake>=3.26"
  hash -r
fi

[ "${1:-}" = "--python" ] || exit 0

# The servers the cluster tests start themselves: sshd and a single-node Slurm (on Debian, as
# root; see the script).
scripts/services/install_debian.sh openssh-server slurm-wlm munge

# The Python side lives in its own venv so the machine's Python stays clean.
VENV=${RUSTRATES_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r scripts/requirements-dev.txt
