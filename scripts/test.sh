#!/usr/bin/env bash
# The test command: formatting, lints, Rust tests, the Python package, and the Python
# tests (PyRates parity and cluster tests included). What CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --python
# The single-node Slurm the Slurm tests start (scripts/services/slurm.sh).
./scripts/services/install_debian.sh slurm-wlm munge
. scripts/env.sh
VENV=${RUSTRATES_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# The extension shares cargo's target directory and dev profile with the tests above
# (maturin reads the root pyproject.toml and installs into the venv).
VIRTUAL_ENV="$PWD/$VENV" maturin develop --quiet
python -m pytest tests/python -q

# The portable wheel for older cluster nodes (glibc 2.17), checked in a fresh venv.
./scripts/check_wheel.sh
