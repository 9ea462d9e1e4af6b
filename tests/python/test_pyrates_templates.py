"""PyRates 1.2.3's own YAML templates load in rustrates (issue 2, item 6).

The wheel is fetched with pip into a throw-away folder (only its YAML files are used) and
the Rust test that loads every template runs on it; see scripts/check_pyrates_templates.py.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "check_pyrates_templates", ROOT / "scripts" / "check_pyrates_templates.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.pyrates
@pytest.mark.timeout(900)
def test_pyrates_templates_load_or_are_listed(tmp_path):
    script = _script()
    templates = script.fetch_templates(tmp_path / "pyrates")
    result = script.run_check(templates)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    counts = re.search(r"(\d+) loaded, (\d+) failed, (\d+) that PyRates", result.stdout)
    assert counts, result.stdout[-2000:]
    loaded, failed, broken = map(int, counts.groups())
    assert failed == 0
    # 156 templates in 13 files; the Rust test lists each one with its status. The complex-valued
    # ones (kuramoto kmo_*, theta) load since complex variables exist (issue 18, item 4).
    assert loaded + broken == 156
    assert loaded == 131
