"""Shared fixtures and independent references for the Python package's tests.

The references integrate the seed's Net3 circuit (SPEC §8) and the reference QIF circuit
(bench/README.md) directly in numpy, from the published equations, with the same fixed-step
schemes — a second implementation the engine's traces are compared against.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
PYRATES_LOCK = REPO / "scripts" / "lock" / "pyrates.lock"
NET3 = "model_templates.montbrio.simple_montbrio.Net3"
REFERENCE_QIF = str(REPO / "examples" / "models" / "reference_qif.yaml") + "/pc_iin"
#: The Stuart–Landau normal form with its Hopf bifurcation at mu = 0, and a map of mu.
HOPF = str(REPO / "examples" / "models" / "stuart_landau_hopf.yaml") + "/hopf"
HOPF_MU = {"mu": {"vars": ["hopf_op/mu"], "nodes": ["p"]}}
HOPF_MU_OMEGA = dict(HOPF_MU, omega={"vars": ["hopf_op/omega"], "nodes": ["p"]})


def hopf_rk4(simulation_time: float, step_size: float, cutoff: float, **settings: object) -> dict:
    """Stuart–Landau run settings: RK4 at `step_size`, `x` recorded, summaries after `cutoff`;
    `settings` adds the rest (summaries, refine, ...)."""
    return dict(
        simulation_time=simulation_time,
        step_size=step_size,
        solver="rk4",
        cutoff=cutoff,
        outputs={"x": "p/hopf_op/x"},
        **settings,
    )


#: A refined Hopf sweep, the grid and the settings apart (the cluster tests pass them so): mu
#: every 0.5 from -1.03, 4 levels by regime. Short runs: only grid_search's and the cluster
#: mode's point sets are compared, bit for bit, not the regimes with the analytic ones.
HOPF_REFINE_GRID = {"mu": -1.03 + 0.5 * np.arange(5)}
HOPF_REFINE_SETTINGS = hopf_rk4(
    60.0, 0.02, 40.0, summaries=["regime", "mean"], refine={"levels": 4, "criterion": "regime"}
)
#: One Montbrió population (qif, tau = Delta = 1, J = 15), bistable for eta in
#: (-5.7435, -3.1361) (the quartic's root count): a sweep of eta that settles by t = 90, with
#: the summaries that tell its attractors apart.
QIF = "model_templates.neural_mass_models.qif.qif"
QIF_SETTLED_SWEEP = dict(
    param_map={"eta": {"vars": ["qif_op/eta"], "nodes": ["p"]}},
    simulation_time=100.0,
    step_size=0.005,
    sampling_step_size=0.05,
    solver="rk4",
    cutoff=90.0,
    outputs={"r": "p/qif_op/r"},
    summaries=["regime", "multistable", "last"],
    keep_traces=False,
)

#: Under CI nothing may skip: what a test needs and does not find is a failure there.
CI = bool(os.environ.get("CI"))


def unavailable(reason: str) -> NoReturn:
    """Skips the test for want of ``reason``, or fails it under CI."""
    if CI:
        pytest.fail(f"cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def run_script(python: str | os.PathLike[str], script: str | os.PathLike[str], *args, cwd, timeout=900):
    """Runs ``python script args...`` in ``cwd`` (a PyRates venv's Python, or this one) and
    fails the test with the end of its stderr unless it exits 0; returns the finished process."""
    done = subprocess.run(
        [os.fspath(python), os.fspath(script), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{Path(script).name} with {python}:\n{done.stderr[-4000:]}"
    return done


def rustrates_binary() -> Path:
    """The CLI ``cargo test --workspace`` builds (scripts/test.sh runs it before pytest)."""
    binary = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "debug" / "rustrates"
    if not binary.exists():
        unavailable(f"{binary} is missing (cargo build -p rustrates-cli)")
    return binary


# ---------------------------------------------------------------------------------------
# numpy references


def net3_rhs(y: np.ndarray, inp: np.ndarray, eta_e, eta_i, w_pi=5.0, w_ip=5.0) -> np.ndarray:
    """Net3 (SPEC §8): PC runs Op_e, IIN runs Op_i; PC/r → IIN/r_e (w_pi), IIN/r → PC/r_i
    (w_ip); tau = delta = 1, J_e/J_i = 15/2 (Op_e) and 12/2 (Op_i). y = (rP, vP, rI, vI)."""
    tau, delta = 1.0, 1.0
    r_p, v_p, r_i, v_i = y
    r_i_pc = w_ip * r_i
    r_e_iin = w_pi * r_p
    dr_p = delta / (np.pi * tau**2) + 2.0 * r_p * v_p / tau
    dv_p = (v_p**2 + eta_e + inp) / tau + 15.0 * r_p - 2.0 * r_i_pc - tau * (np.pi * r_p) ** 2
    dr_i = delta / (np.pi * tau**2) + 2.0 * r_i * v_i / tau
    dv_i = (v_i**2 + eta_i) / tau - 2.0 * r_i + 12.0 * r_e_iin - tau * (np.pi * r_i) ** 2
    return np.stack([dr_p, dv_p, dr_i, dv_i])


def qif_rhs(y: np.ndarray, inp: np.ndarray, eta_pc, eta_iin) -> np.ndarray:
    """The reference circuit (bench/README.md): r' = (Δ/(πτ) + 2rv)/τ,
    v' = (v² + η + I_ext + τ·r_in − (πτr)²)/τ, r_in(PC) = 15 r_PC − 10 r_IIN,
    r_in(IIN) = 10 r_PC, τ = Δ = 1."""
    r_p, v_p, r_i, v_i = y
    rin_p = 15.0 * r_p - 10.0 * r_i
    rin_i = 10.0 * r_p
    dr_p = 1.0 / np.pi + 2.0 * r_p * v_p
    dv_p = v_p**2 + eta_pc + inp + rin_p - (np.pi * r_p) ** 2
    dr_i = 1.0 / np.pi + 2.0 * r_i * v_i
    dv_i = v_i**2 + eta_iin + rin_i - (np.pi * r_i) ** 2
    return np.stack([dr_p, dv_p, dr_i, dv_i])


def integrate(
    rhs, y0: np.ndarray, inp: np.ndarray, dt: float, dts: float, T: float, method: str = "euler", **params
) -> np.ndarray:
    """Fixed-step integration; ``inp[step]`` (shape (steps, points)) drives step ``step``
    for all its stages. Returns the states sampled at t = k·dts, k = 0 … round(T/dts) − 1,
    shape (samples, 4, points); row 0 is the initial state."""
    steps = int(round(T / dt))
    every = int(round(dts / dt))
    n_samples = int(round(T / dts))
    out = np.empty((n_samples,) + y0.shape)
    y = y0.copy()
    for step in range(steps):
        if step % every == 0 and step // every < n_samples:
            out[step // every] = y
        u = inp[min(step, len(inp) - 1)]
        k1 = rhs(y, u, **params)
        if method == "euler":
            y = y + dt * k1
        elif method == "heun":
            k2 = rhs(y + dt * k1, u, **params)
            y = y + dt * 0.5 * (k1 + k2)
        elif method == "rk4":
            k2 = rhs(y + 0.5 * dt * k1, u, **params)
            k3 = rhs(y + 0.5 * dt * k2, u, **params)
            k4 = rhs(y + dt * k3, u, **params)
            y = y + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        else:
            raise ValueError(method)
    return out


@pytest.fixture(scope="session")
def rustrates():
    import rustrates as rr

    return rr


@contextmanager
def local_dask_client(n_workers: int, processes: bool) -> Iterator:
    """A Dask client of a ``LocalCluster`` of one-thread workers, closed at the end. ":0": the
    scheduler's HTTP server (there even without a dashboard) on a free port, so a cluster
    someone else runs on this machine (port 8787) does not make it warn."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=":0")
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


# ---------------------------------------------------------------------------------------
# PyRates 1.2.3 in a throw-away venv


@pytest.fixture(scope="session")
def pyrates_python(tmp_path_factory) -> Path:
    """The Python of a venv with pyrates==1.2.3 and its dependencies exactly as
    ``scripts/lock/pyrates.lock`` pins them, created once per test run (≈ 20 s with a warm
    pip cache). ``RUSTRATES_PYRATES_VENV`` points to an existing one instead."""
    existing = os.environ.get("RUSTRATES_PYRATES_VENV")
    if existing:
        return Path(existing) / "bin" / "python"
    venv = tmp_path_factory.mktemp("pyrates-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
            "-r",
            str(PYRATES_LOCK),
        ],
        check=True,
        timeout=900,
    )
    return python
