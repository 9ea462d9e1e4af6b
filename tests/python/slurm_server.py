"""A single-node Slurm for the tests: ``scripts/services/slurm.sh`` started once per session.

``slurm`` starts munged, slurmctld and slurmd (as root, state in a temporary directory), sets
``SLURM_CONF`` for this process and the jobs it submits, and stops everything at the end —
also when a test failed. Outside CI a machine without root or without the Debian packages
(``slurm-wlm``, ``munge``) skips the Slurm tests; under ``CI=true`` that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, unavailable

SCRIPT = REPO / "scripts" / "services" / "slurm.sh"


@dataclass(frozen=True)
class Slurm:
    conf: Path  # the slurm.conf, also in os.environ["SLURM_CONF"]
    partition: str  # the one partition, holding the one node
    state_dir: Path


@pytest.fixture(scope="session")
def slurm():
    if os.geteuid() != 0:
        unavailable("a test Slurm needs root (slurmd starts jobs as their users)")
    missing = [cmd for cmd in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(cmd) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not found: scripts/services/install_debian.sh slurm-wlm munge")
    state_dir = Path(tempfile.mkdtemp(prefix="rustrates-slurm-"))
    started = subprocess.run([SCRIPT, "start", state_dir], capture_output=True, text=True, timeout=120)
    try:
        if started.returncode != 0:
            pytest.fail(f"the test Slurm did not start:\n{started.stderr}", pytrace=False)
        conf = state_dir / "slurm.conf"
        previous = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = os.fspath(conf)
        try:
            yield Slurm(conf=conf, partition="debug", state_dir=state_dir)
        finally:
            if previous is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = previous
    finally:
        stopped = subprocess.run([SCRIPT, "stop", state_dir], capture_output=True, text=True, timeout=120)
        shutil.rmtree(state_dir, ignore_errors=True)
        assert stopped.returncode == 0, f"stopping the test Slurm failed:\n{stopped.stderr}"
