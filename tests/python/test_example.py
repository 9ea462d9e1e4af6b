"""examples/parameter_sweep.py runs as CI would run it and writes its two figures."""

import sys

import pytest

from conftest import REPO, run_script

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_example_parameter_sweep_writes_heatmap_and_traces(tmp_path):
    proc = run_script(sys.executable, REPO / "examples" / "parameter_sweep.py", tmp_path, cwd=tmp_path, timeout=600)
    assert "25 grid points simulated" in proc.stdout
    for name in ("parameter_sweep_heatmap.png", "parameter_sweep_traces.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, name
