"""The test environment is the lock, and warnings stay errors for our own code."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts" / "lock"))
import check_env  # noqa: E402

DEV_LOCK = REPO / "scripts" / "lock" / "dev.lock"


def test_installed_packages_are_exactly_the_lock():
    # Any drift (a package upgraded, added or missing) makes CI's results depend on the day
    # it ran; scripts/setup.sh --python restores the lock.
    assert check_env.differences(DEV_LOCK) == []


def test_lock_parser_reads_pins_not_hashes(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text(
        "dask[distributed]==2026.8.0 \\\n    --hash=sha256:00\nNumPy==2.4.6 \\\n"
        "    --hash=sha256:11\n    # via pandas\n"
    )
    assert check_env.locked_versions(lock) == {"dask": "2026.8.0", "numpy": "2.4.6"}


def pytest_filters() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return config["tool"]["pytest"]["ini_options"]["filterwarnings"]


def test_third_party_warnings_are_ignored_only_by_category_and_module():
    filters = pytest_filters()
    assert filters[0] == "error"
    for rule in filters[1:]:
        action, message, category, module = (rule.split(":") + ["", "", "", ""])[:4]
        assert action == "ignore", rule
        assert message and "." in category and module, f"blanket filter: {rule}"
        assert not module.startswith("rustrates"), f"hides our own warnings: {rule}"


def test_our_package_raises_no_warning():
    # Every module of the package imported and a small sweep run with warnings as errors,
    # under the same third-party ignores pytest applies (the cluster module imports Dask and
    # asyncssh), in a fresh process so nothing imported earlier hides a warning.
    code = """
import importlib, pkgutil, sys, warnings
warnings.simplefilter("error")
for rule in sys.argv[1:]:
    action, message, category, module = rule.split(":")
    owner, _, name = category.rpartition(".")
    warnings.filterwarnings(action, message, getattr(importlib.import_module(owner), name), module)
import numpy as np
import rustrates
for module in pkgutil.walk_packages(rustrates.__path__, "rustrates."):
    importlib.import_module(module.name)
rustrates.grid_search(
    "model_templates.montbrio.simple_montbrio.Net3",
    param_grid={"eta_op": np.linspace(-5, 5, 3)},
    param_map={"eta_op": {"vars": ["Op_e/eta"], "nodes": ["PC"]}},
    simulation_time=0.01, dt=1e-4, inputs={"PC/Op_e/inp": 1.0}, outputs={"r": "PC/Op_e/r"})
print("no warning")
"""
    done = subprocess.run(
        [sys.executable, "-c", code, *pytest_filters()[1:]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "no warning" in done.stdout, done.stderr[-3000:]
