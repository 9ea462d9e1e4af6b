"""examples/parameter_sweep.py runs as CI would run it and writes its two figures."""

import subprocess
import sys

import pytest

from conftest import REPO

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_example_parameter_sweep_writes_heatmap_and_traces(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "parameter_sweep.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "25 grid points simulated" in proc.stdout
    for name in ("parameter_sweep_heatmap.png", "parameter_sweep_traces.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, name
