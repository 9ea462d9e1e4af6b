#!/usr/bin/env bash
# Builds the portable wheel (manylinux2014 = glibc 2.17, linked by zig) and checks it the way
# an older cluster node would use it: a fresh venv, next to h5py and PyTables (two HDF5
# copies in one process must not clash), running a small sweep into an HDF5 file.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${RUSTRATES_VENV:-.venv}
export PATH="$ROOT/$VENV/bin:$PATH"
OUT=$ROOT/target/wheel-check
rm -rf "$OUT"
mkdir -p "$OUT/dist"

# The release build with zig takes ~8 minutes on two cores; its wheel is kept, by the hash of
# everything that goes into it, outside the tree (so a fresh clone on the same machine finds
# it). The check below always runs, on the kept or the new wheel.
inputs=$( { rustc -V; git ls-files -z -- crates Cargo.toml Cargo.lock pyproject.toml \
  scripts/check_wheel.sh scripts/lock/dev.lock | xargs -0 sha256sum; } | sha256sum | cut -c1-32)
CACHE=${RUSTRATES_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rustrates/wheel-check}/$inputs
if ls "$CACHE"/rustrates-*manylinux*.whl >/dev/null 2>&1; then
  echo "check_wheel.sh: inputs unchanged ($inputs), checking the wheel built for them"
  cp "$CACHE"/rustrates-*manylinux*.whl "$OUT/dist/"
else
  maturin build --release --zig --compatibility manylinux2014 -o "$OUT/dist" --quiet
fi
wheel=$(ls "$OUT"/dist/rustrates-*manylinux*.whl)
python3 -m venv "$OUT/venv"
"$OUT/venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps \
  -r scripts/lock/wheel-check.lock
"$OUT/venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$wheel"
"$OUT/venv/bin/pip" check
newest_glibc=$(cd "$OUT" && unzip -o -q "$wheel" 'rustrates/_rustrates*.so' -d so &&
  objdump -T so/rustrates/_rustrates*.so | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)
if [ "$(printf '%s\nGLIBC_2.17\n' "$newest_glibc" | sort -V | tail -1)" != "GLIBC_2.17" ]; then
  echo "the wheel needs $newest_glibc, newer than manylinux2014's GLIBC_2.17" >&2
  exit 1
fi
cd "$OUT"
"$OUT/venv/bin/python" - <<'PY'
import h5py, tables  # noqa: F401  (both bring their own HDF5)
import numpy as np
import pandas as pd
from rustrates import grid_search, read_results

path, result_map = grid_search(
    "model_templates.montbrio.simple_montbrio.Net3",
    param_grid={"eta_op": np.linspace(-5, 5, 3)},
    param_map={"eta_op": {"vars": ["Op_e/eta"], "nodes": ["PC"]}},
    simulation_time=0.1, dt=1e-4, inputs={"PC/Op_e/inp": 1.0},
    outputs={"r": "PC/Op_e/r"}, out="wheel_check.h5")
with h5py.File(path) as f:
    assert f["traces"].shape == (3, 1000, 1), f["traces"].shape
    traces = f["traces"][:, :, 0]
results, _, _ = read_results(path)
assert np.array_equal(results.to_numpy().T, traces)
assert list(pd.read_hdf(path, "Results/result_map").index) == ["Net3_0", "Net3_1", "Net3_2"]
print("wheel check: ok")
PY
mkdir -p "$CACHE" && cp "$wheel" "$CACHE/"
