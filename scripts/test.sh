#!/usr/bin/env bash
# The test command: formatting, lints, Rust tests, the Python package, and the Python
# tests (PyRates parity and cluster tests included). What CI runs. Each step's wall time is
# printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
timings=()
step() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  timings+=("$(printf '%5d s  %s' $((SECONDS - start)) "$name")")
}

step "setup (cmake, Debian services, locked .venv)" ./scripts/setup.sh --python
. scripts/env.sh
VENV=${RUSTRATES_VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

step "cargo fmt" cargo fmt --all --check
# The Python: lint and format (configured in pyproject.toml's [tool.ruff]).
step "ruff check" ruff check .
step "ruff format" ruff format --check .
step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test" cargo test --workspace --locked

# The extension shares cargo's target directory and dev profile with the tests above
# (maturin reads the root pyproject.toml and installs into the venv).
step "maturin develop" env VIRTUAL_ENV="$PWD/$VENV" maturin develop --quiet
# The extension's stub (_rustrates.pyi) against what it exports: signatures and defaults.
step "stubtest" python -m mypy.stubtest rustrates._rustrates --allowlist scripts/stubtest-allowlist.txt
step "pytest" python -m pytest tests/python -q

# The portable wheel for older cluster nodes (glibc 2.17), checked in a fresh venv.
step "wheel check" ./scripts/check_wheel.sh

echo "test.sh: every step passed"
printf '%s\n' "${timings[@]}"
