#!/usr/bin/env bash
# The README's first command: build rustrates and run the seed's parameter sweep (Net3, 5×5
# grid of the two populations' excitabilities), then draw the heatmap and a few traces.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. scripts/env.sh
rustrates() { cargo run --quiet --release --locked -p rustrates-cli -- "$@"; }
rustrates sweep examples/montbrio/sweep.yaml --out results.h5
rustrates plot results.h5 --summary mean --out heatmap.png \
  --traces Net3_0,Net3_12,Net3_24 --traces-out traces.png
