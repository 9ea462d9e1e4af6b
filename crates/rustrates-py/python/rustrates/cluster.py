"""``ClusterGridSearch``: the seed's cluster mode, run on Dask distributed.

The grid is cut into chunks of ``chunk_size`` points. Each chunk is one Dask task that runs
the Rust engine on a worker, into a private temporary directory, and sends the chunk's part
file back as bytes; the client records it in ``compute_dir`` exactly as the engine records the
chunks of a local sweep (part file written as ``.tmp``, fsynced and renamed, then a line in
``manifest.jsonl``). When every chunk is in, the client merges the parts with the engine and
adds the seed's pandas keys. No filesystem is shared between client and workers: the template
files (and the ``worker_file``) travel with the tasks.

Why this survives failures:

- a worker that dies costs the re-run of the chunks it held (Dask reschedules them; an
  exception inside a task is retried ``retries`` times);
- a chunk that fails every try does not stop the others: the file is still written, with that
  chunk's points marked by the engine (status ``failed``, code 3 in ``/status/code``, the
  error in ``/status/error``, NaN outputs, NaN columns in ``Results/results``), and the call
  warns (or raises after writing, ``on_failure='raise'``); ``failed`` lists the chunks;
- a client that dies leaves ``compute_dir`` with every finished chunk; the same call again
  computes only the chunks the manifest does not list (``compute_dir=None`` means a folder
  named by the sweep's fingerprint in the working directory, so repeating the call is enough);
- failed chunks are never recorded as done, so the same call again retries exactly them and
  replaces the marked file by the complete one;
- a ``compute_dir`` that holds another sweep is refused (the engine's fingerprint check);
- the final file is written as ``results.h5.partial`` and renamed when done: it is never
  half-written, and it always holds every point of the sweep, computed or marked failed (the
  root attribute ``failed_points`` is 0 when it is the complete result).

Layout of ``compute_dir``: the engine's (``sweep.json``, ``manifest.jsonl``, ``parts/``),
plus ``post/`` (the ``worker_file`` outputs per chunk), ``results.h5`` (the final file) and,
during a call, ``results.h5.partial`` (the final file being written: the pandas keys that do
not depend on the results go in while the chunks run, then the engine merges the chunks into
it).

Cluster kinds (``nodes``):

- ``'localhost'`` or an int: a :class:`dask.distributed.LocalCluster` with that many worker
  processes (``'localhost'``: one per core), one thread each;
- a :class:`dask.distributed.Client`, or a scheduler address (``'tcp://host:8786'``): use that
  cluster (e.g. ``dask_jobqueue.SLURMCluster``'s client, whose partition is checked against
  ``sinfo`` at once: :func:`check_slurm_partition`);
- a list of host names: a :class:`dask.distributed.SSHCluster` (``asyncssh``: the agent, keys,
  ``~/.ssh/config`` and ``known_hosts`` of the user running the client, or
  ``connect_options``). Dask runs the scheduler on the **first** host and one single-threaded
  worker on each of the others (list a host again for another worker; a single host is listed
  twice, so it runs both); ``worker_env`` is the Python executable on the hosts, which must have
  the client's Python version, dask and the client's rustrates version. Each host is logged in
  to and checked before Dask starts, so a host that cannot be used is named with the reason.

Templates given as a file path need not exist on the workers: every template file the client
read (the template's own and the files it refers to) is shipped with the tasks and loaded on
the worker from a private copy laid out as on the client, so relative paths resolve as they
did there. The built-in library (``model_templates...``) is part of rustrates.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import pickle
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _core, _pandas_keys, _rustrates
from ._results import PANDAS_KEYS_MAX_BYTES
from ._rustrates import SweepError

#: Name of the merged file inside ``compute_dir``.
RESULT_FILE = "results.h5"

#: Dask settings for the local clusters ``ClusterGridSearch`` starts itself. Dask's defaults
#: poll every process's event loop every 20 ms, sample running tasks' stacks every 10 ms and
#: workers' memory every 100 ms: on an idle 2-worker LocalCluster ≈ 0.15 CPU s per second
#: (measured), ≈ 10 % of a 10,000-point sweep's time on two cores. With these ≈ 0.02. What
#: they slow down is diagnostics (the dashboard's profiles, event-loop warnings) and the
#: reaction to a worker outgrowing its memory limit (500 ms instead of 100 ms). To use them
#: for a cluster you start: ``with dask.config.set(DASK_CONFIG): cluster = LocalCluster(...)``.
DASK_CONFIG = {
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "500ms",
}


class ClusterSweepError(SweepError):
    """Some chunks failed on every try (raised with ``on_failure='raise'``, or when no chunk
    could be computed at all). ``failed`` lists ``{chunk, start, end, labels, error}``;
    ``path`` is the written file with those points marked (None when nothing was computed).
    The finished chunks stay in ``compute_dir`` and the same call again retries only the
    failed ones."""

    failed: list[dict[str, Any]]
    path: str | None


class ClusterSweepWarning(_core.RustratesWarning):
    """Some chunks failed on every try; the file was written with their points marked."""


class ClusterConnectionError(ConnectionError):
    """The Dask scheduler could not be reached, no worker joined in time, or an SSH host
    cannot be reached or refused the login (the message names the host)."""


# ---------------------------------------------------------------------------------------
# what runs on a worker

# The check is pickled by value (it is defined in ``__main__``'s name), so a worker without
# rustrates can run it and say so instead of failing to unpickle a rustrates function.
_CHECK_SOURCE = """
def rustrates_worker_check():
    import sys
    try:
        import rustrates
    except Exception as exc:
        return ("missing", f"{type(exc).__name__}: {exc}", sys.executable)
    return ("ok", rustrates.__version__, sys.executable)
"""

_SWEEPS: dict[str, Any] = {}
_POSTPROCESSORS: dict[str, Any] = {}


def _worker_threads() -> int | None:
    try:
        from dask.distributed import get_worker  # noqa: PLC0415 - only on workers
        worker = get_worker()
    except (ImportError, ValueError):
        return None
    state = getattr(worker, "state", None)
    n = getattr(state, "nthreads", None) or getattr(worker, "nthreads", None)
    return int(n) if n else None


def _sweep_for(payload: Mapping[str, Any]) -> Any:
    """The sweep object of a payload, built once per worker process (loading the template
    and checking the arguments are not repeated per chunk)."""
    key = payload["fingerprint"]
    sweep = _SWEEPS.get(key)
    if sweep is None:
        kwargs = dict(payload["kwargs"])
        kwargs["args"] = _aligned(dict(kwargs["args"]))
        if kwargs["args"].get("threads") is None:
            kwargs["args"]["threads"] = _worker_threads()
        sweep = _new_sweep(kwargs)
        if sweep.fingerprint != key:
            raise SweepError(
                f"this worker computes fingerprint {sweep.fingerprint[:16]}… for the sweep, the "
                f"client {key[:16]}…: the worker's rustrates reads the shipped template or the "
                "settings differently; install the same rustrates version everywhere"
            )
        if len(_SWEEPS) >= 4:
            _SWEEPS.clear()
        _SWEEPS[key] = sweep
    return sweep


def _new_sweep(kwargs: Mapping[str, Any]) -> Any:
    """A ``ClusterSweep`` from the picklable form the client sends: ``{template, args,
    chunk_size[, template_files, template_cwd]}`` with ``args`` the keywords of ``SweepArgs``."""
    rest = {k: v for k, v in kwargs.items() if k not in ("template", "args")}
    return _rustrates.ClusterSweep(kwargs["template"], _rustrates.SweepArgs(**kwargs["args"]), **rest)


def _aligned(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Arrays unpickled from Dask's out-of-band buffers may be unaligned, which the engine's
    array views refuse: aligned copies."""

    def fix(a: Any) -> Any:
        return np.require(a, requirements=["C", "A"]) if isinstance(a, np.ndarray) else a

    if kwargs.get("grid_values") is not None:
        kwargs["grid_values"] = [fix(v) for v in kwargs["grid_values"]]
    kwargs["grid_rows"] = fix(kwargs.get("grid_rows"))
    kwargs["inputs"] = {k: fix(v) for k, v in kwargs["inputs"].items()}
    return kwargs


def _postprocessor(source: str, name: str) -> Any:
    key = hashlib.sha256(source.encode()).hexdigest()
    fn = _POSTPROCESSORS.get(key)
    if fn is None:
        namespace: dict[str, Any] = {"__name__": "rustrates_worker_file", "__file__": name}
        exec(compile(source, name, "exec"), namespace)  # noqa: S102 - the user's worker_file
        fn = namespace["worker_postprocessing"]
        _POSTPROCESSORS[key] = fn
    return fn


def _chunk_frames(res: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    results = _core.traces_frame(res) if res["traces"] is not None else _core.summaries_frame(res)
    return results, _core.result_map_frame(res)


def _apply_postprocessing(fn: Any, res: Mapping[str, Any], where: str) -> pd.DataFrame:
    results, result_map = _chunk_frames(res)
    out = fn(results, result_map)
    if isinstance(out, pd.Series):
        out = out.to_frame()
    if not isinstance(out, pd.DataFrame):
        raise TypeError(f"worker_postprocessing ({where}) must return a pandas DataFrame, got {type(out).__name__}")
    return out


def run_chunk_task(payload: Mapping[str, Any], index: int) -> dict[str, Any]:
    """One Dask task: chunk ``index`` of the sweep, run into a temporary directory of this
    worker. Returns the part file's bytes, the fingerprint the engine wrote, and the pickled
    ``worker_postprocessing`` output when a worker_file was given."""
    sweep = _sweep_for(payload)
    with tempfile.TemporaryDirectory(prefix="rustrates-chunk-") as tmp:
        rel = sweep.run_chunk(index, tmp)
        part = os.path.join(tmp, rel)
        with open(os.path.join(tmp, "sweep.json"), encoding="utf-8") as f:
            fingerprint = json.load(f)["fingerprint"]
        post = None
        if payload.get("post_source") is not None:
            fn = _postprocessor(payload["post_source"], payload["post_name"])
            res = sweep.read_part(part)
            post = pickle.dumps(_apply_postprocessing(fn, res, f"chunk {index}"), protocol=pickle.HIGHEST_PROTOCOL)
        data = _rustrates.read_bytes(part)
    return {"index": index, "data": data, "fingerprint": fingerprint, "post": post}


# ---------------------------------------------------------------------------------------
# progress over chunks


class _ChunkProgress:
    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, done, enabled
        self._bar = None
        self._start = time.perf_counter()
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm  # noqa: PLC0415 - optional dependency
        except ImportError:
            self._line()
        else:
            self._bar = tqdm(total=total, initial=done, desc="ClusterGridSearch", unit="chunk")

    def _line(self) -> None:
        elapsed = time.perf_counter() - self._start
        sys.stderr.write(f"\rClusterGridSearch: {self.done}/{self.total} chunks, {elapsed:6.1f} s")
        sys.stderr.flush()

    def update(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif self.enabled:
            self._line()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


# ---------------------------------------------------------------------------------------
# the client


class SlurmPartitionError(ValueError):
    """A ``dask_jobqueue.SLURMCluster`` asks for a partition this Slurm does not have."""


def _requested_partitions(job_header: str) -> list[str]:
    """The partitions named by the ``#SBATCH -p``/``--partition`` lines of a job script."""
    words: list[str] = []
    for line in job_header.splitlines():
        if line.startswith("#SBATCH"):
            words += shlex.split(line[len("#SBATCH"):])
    names: list[str] = []
    for i, word in enumerate(words):
        if word in ("-p", "--partition") and i + 1 < len(words):
            value = words[i + 1]
        elif word.startswith("--partition="):
            value = word.split("=", 1)[1]
        elif word.startswith("-p") and not word.startswith("--") and len(word) > 2:
            value = word[2:]
        else:
            continue
        names += [n for n in value.split(",") if n]
    return names


def check_slurm_partition(cluster: Any) -> None:
    """Raises :class:`SlurmPartitionError` when ``cluster`` (a ``dask_jobqueue.SLURMCluster``)
    submits its workers to a partition ``sinfo`` does not list, instead of letting
    ``ClusterGridSearch`` wait for workers whose ``sbatch`` was refused. Anything else, or a
    machine without ``sinfo``, passes."""
    jobqueue = sys.modules.get("dask_jobqueue")
    if jobqueue is None or not isinstance(cluster, jobqueue.SLURMCluster):
        return
    wanted = _requested_partitions(cluster.job_header)
    if not wanted:
        return
    try:
        out = subprocess.run(["sinfo", "--noheader", "--format=%P"], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return
    if out.returncode != 0:
        raise ClusterConnectionError(
            f"cannot list the Slurm partitions to check SLURMCluster's {wanted}: sinfo said "
            f"{out.stderr.strip() or out.returncode}; is slurmctld reachable from here (SLURM_CONF)?"
        )
    listed = [p for p in out.stdout.split() if p]
    known = [p.rstrip("*") for p in listed]
    unknown = [p for p in wanted if p not in known]
    if unknown:
        default = next((p.rstrip("*") for p in listed if p.endswith("*")), None)
        fix = f"leave it unset for the default partition ({default}), or " if default else ""
        raise SlurmPartitionError(
            f"Slurm partition {', '.join(map(repr, unknown))} (SLURMCluster queue= or an #SBATCH -p "
            f"directive) is unknown to this Slurm; sinfo lists: {', '.join(known) or 'none'}. "
            f"Set SLURMCluster(queue=...) to one of those ({fix}ask the cluster's admins which to use)"
        )


def _is_address(nodes: str) -> bool:
    return "://" in nodes or (":" in nodes and nodes.rsplit(":", 1)[1].isdigit())


# ---------------------------------------------------------------------------------------
# SSH hosts

# Run on each SSH host by the Python given as worker_env, before Dask is started there.
_SSH_PROBE = """
import json, sys
out = {"python": "%d.%d" % sys.version_info[:2]}
for name in ("distributed", "rustrates"):
    try:
        out[name] = __import__(name).__version__
    except Exception as exc:
        out[name] = None
        out[name + "_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def _per_host_options(options: Any, n_nodes: int, n_hosts: int) -> Any:
    """``connect_options`` as SSHCluster takes them: one dict, or one per host (a single
    node was doubled into scheduler and worker, so its one entry is too)."""
    if options is None:
        return {}
    if isinstance(options, Mapping):
        return dict(options)
    if isinstance(options, (list, tuple)) and all(isinstance(o, Mapping) for o in options):
        if len(options) != n_nodes:
            raise ValueError(
                f"connect_options lists {len(options)} mappings for {n_nodes} hosts: give one per "
                "entry of nodes, or a single mapping for all of them"
            )
        listed = [dict(o) for o in options]
        return listed * 2 if n_hosts > n_nodes else listed
    raise TypeError(
        "connect_options must be a mapping of asyncssh.connect keywords (port=, username=, "
        f"client_keys=, known_hosts=, ...) or a list of them, one per host; got {options!r}"
    )


def _check_ssh_hosts(hosts: list[str], options: Any, python: str, timeout: float) -> None:
    """Logs in to every distinct host and runs ``python`` there: raises one clear error per
    failing host (unreachable, login refused, unknown host key, no such Python, Python
    without dask or rustrates, another rustrates version)."""
    import asyncio  # noqa: PLC0415
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    try:
        import asyncssh  # noqa: F401, PLC0415 - optional dependency
    except ImportError:
        raise ImportError(
            "ClusterGridSearch on SSH hosts needs asyncssh: pip install 'rustrates[cluster]' "
            "(or pip install asyncssh)"
        ) from None
    per_host = options if isinstance(options, list) else [options] * len(hosts)
    checks: dict[str, tuple[str, dict[str, Any], bool]] = {}
    for i, (host, opts) in enumerate(zip(hosts, per_host)):
        key = f"{host} {sorted(opts.items())!r}"
        # The first host runs the scheduler (dask only); the others run the chunks.
        needs_rustrates = i > 0 or checks.get(key, ("", {}, False))[2]
        checks[key] = (host, opts, needs_rustrates)

    async def check_all() -> list[BaseException | None]:
        return await asyncio.gather(
            *(_check_ssh_host(host, opts, python, rr, timeout) for host, opts, rr in checks.values()),
            return_exceptions=True,
        )

    # Its own thread and event loop: the caller may be inside one (Jupyter).
    with ThreadPoolExecutor(1) as pool:
        results = pool.submit(asyncio.run, check_all()).result()
    errors = [r for r in results if r is not None]
    if errors:
        first = errors[0]
        if len(errors) == 1:
            raise first
        raise type(first)("; ".join(str(e) for e in errors))


async def _check_ssh_host(
    host: str, options: Mapping[str, Any], python: str, needs_rustrates: bool, timeout: float
) -> None:
    import asyncio  # noqa: PLC0415
    import getpass  # noqa: PLC0415
    import shlex  # noqa: PLC0415

    import asyncssh  # noqa: PLC0415

    opts = dict(options)
    opts.setdefault("connect_timeout", timeout)
    where = f"SSH host {host}" + (f" port {opts['port']}" if "port" in opts else "")
    user = opts.get("username") or getpass.getuser()
    try:
        conn = await asyncssh.connect(host, **opts)
    except asyncssh.PermissionDenied as exc:
        return ClusterConnectionError(
            f"{where} refused the login as {user!r} ({exc.reason}): add your public key to that user's "
            "~/.ssh/authorized_keys there, load the key into your ssh-agent, or name it with "
            "connect_options={'client_keys': ['~/.ssh/id_ed25519'], 'username': ...}"
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        return ClusterConnectionError(
            f"{where}: its host key is not trusted ({exc.reason}): log in once with `ssh {host}` to "
            "add it to ~/.ssh/known_hosts, or pass connect_options={'known_hosts': 'path/to/known_hosts'}"
        )
    except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else f"no answer within {opts['connect_timeout']:g} s"
        return ClusterConnectionError(
            f"cannot reach {where} ({detail}): check the host name, that sshd runs there and that the "
            "port is open from here (connect_options={'port': ...} for another port, connect_timeout= "
            "for a longer wait)"
        )
    # Importing rustrates (numpy, pandas) on a cold disk takes a while: a generous limit.
    limit = timeout + 60
    async with conn:
        try:
            result = await conn.run(f"{shlex.quote(python)} -c {shlex.quote(_SSH_PROBE)}", check=False,
                                    timeout=limit)
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
            return RuntimeError(
                f"worker_env {python!r} on {where} did not finish a short Python check within {limit:g} s "
                f"({type(exc).__name__}: {exc}); is that host overloaded, or its filesystem hanging?"
            )
    stderr = str(result.stderr or "").strip()
    if result.exit_status in (126, 127):
        return FileNotFoundError(
            f"worker_env {python!r} is not an executable Python on {where} ({stderr}): set worker_env= "
            "to the path of the Python that has rustrates there, e.g. '/home/me/venv/bin/python'"
        )
    try:
        found = json.loads(str(result.stdout).strip().splitlines()[-1])
    except (ValueError, IndexError):
        return RuntimeError(
            f"worker_env {python!r} on {where} failed to run a Python check (exit status "
            f"{result.exit_status}: {stderr or result.stdout!r}); is it a Python 3 interpreter?"
        )
    client_python = "%d.%d" % sys.version_info[:2]
    if found.get("python") != client_python:
        return RuntimeError(
            f"{python} on {where} is Python {found.get('python')}, this client {client_python}: Dask "
            f"sends pickled functions, which need the same version; set worker_env= to a Python "
            f"{client_python} there"
        )
    wheel = (f"`{python} -m pip install rustrates=={_rustrates.__version__}` there (or the "
             "manylinux2014 wheel that scripts/check_wheel.sh builds)")
    if found["distributed"] is None:
        return ImportError(
            f"{python} on {where} cannot import dask.distributed ({found['distributed_error']}): "
            f"install it there with `{python} -m pip install 'dask[distributed]'`, or set worker_env= "
            "to a Python that has it"
        )
    if not needs_rustrates:
        return None
    if found["rustrates"] is None:
        return ImportError(
            f"{python} on {where} cannot import rustrates ({found['rustrates_error']}): install "
            f"{wheel}, or set worker_env= to a Python that has it"
        )
    if found["rustrates"] != _rustrates.__version__:
        return ImportError(
            f"{python} on {where} has rustrates {found['rustrates']}, this client "
            f"{_rustrates.__version__}: install {wheel}"
        )
    return None


class ClusterGridSearch:
    """Parameter sweeps on a Dask cluster, with the seed's API.

    Parameters
    ----------
    nodes
        ``'localhost'`` or an int (local worker processes), a ``dask.distributed.Client``, a
        scheduler address, or a list of host names (SSH; the first runs the scheduler).
    compute_dir
        Where the chunks and the final file go (no shared filesystem needed). None: a folder
        ``rustrates_cgs_<fingerprint>`` in the working directory, so repeating a call resumes.
    retries
        Times a chunk whose task raised is tried again before it counts as failed. A worker
        that dies does not use them up: Dask reschedules its chunks (up to its own
        ``allowed-failures`` setting, default 3).
    on_failure
        What ``run`` does when chunks failed every try, after writing the file with their
        points marked: ``'warn'`` (default: a :class:`ClusterSweepWarning`, and the path is
        returned as usual) or ``'raise'`` (:class:`ClusterSweepError`, whose ``path`` is the
        file). Either way ``failed`` lists them; the same call again retries only them.
    connect_timeout
        Seconds to wait for the scheduler and for the first worker (SSH hosts: for each login,
        and for all workers to join).
    worker_env
        SSH hosts only: the Python executable on the hosts, with rustrates and dask installed
        (may also be given to ``run``). Default: this client's ``sys.executable`` path.
    connect_options
        SSH hosts only: keywords for ``asyncssh.connect`` (``port``, ``username``,
        ``client_keys``, ``known_hosts``, ``agent_path``, ``config``, ...), one mapping for all
        hosts or a list with one per entry of ``nodes``. Without them asyncssh reads
        ``~/.ssh/config``, ``~/.ssh/known_hosts``, the keys in ``~/.ssh`` and the SSH agent.
    progress
        Show a progress bar over chunks (tqdm if installed, otherwise a line on stderr).
    cluster_kwargs
        Passed to ``LocalCluster`` or ``SSHCluster``; for SSHCluster, ``worker_options`` and
        ``scheduler_options`` add to the defaults (one thread per worker, no dashboard).
    """

    def __init__(
        self,
        nodes: Any = "localhost",
        compute_dir: str | os.PathLike[str] | None = None,
        *,
        retries: int = 3,
        on_failure: str = "warn",
        connect_timeout: float = 30.0,
        worker_env: str | None = None,
        connect_options: Mapping[str, Any] | list[Mapping[str, Any]] | None = None,
        progress: bool = True,
        cluster_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            import dask.distributed  # noqa: F401, PLC0415 - optional dependency
        except ImportError:
            raise ImportError(
                "ClusterGridSearch needs Dask distributed: pip install 'rustrates[cluster]' "
                "(or pip install 'dask[distributed]')"
            ) from None
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
        if on_failure not in ("warn", "raise"):
            raise ValueError(f"on_failure must be 'warn' or 'raise', got {on_failure!r}")
        self.nodes = nodes
        self.compute_dir = None if compute_dir is None else Path(compute_dir)
        self.retries = retries
        self.on_failure = on_failure
        self.connect_timeout = float(connect_timeout)
        self.worker_env = worker_env
        self.connect_options = connect_options
        self.progress = progress
        self._cluster_kwargs = dict(cluster_kwargs or {})
        self._cluster: Any = None
        self._client: Any = None
        self._own_client = False
        self._checked_workers: set[str] = set()
        #: Counts of the last ``run``: chunks total, already done, computed, failed.
        self.last_run: dict[str, int] = {}
        #: Chunks of the last ``run`` that failed every try: ``{chunk, start, end, labels,
        #: error}`` each, in chunk order (empty when the file is complete).
        self.failed: list[dict[str, Any]] = []
        if not (isinstance(nodes, (list, tuple)) and nodes):
            self._connect(None)

    # -- cluster ---------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The ``dask.distributed.Client``. SSH hosts are started by the first ``run`` (which
        may name ``worker_env``) or by reading this property (with the constructor's)."""
        if self._client is None and isinstance(self.nodes, (list, tuple)):
            self._connect(None)
        return self._client

    def _connect(self, worker_env: str | None) -> None:
        from dask.distributed import Client, LocalCluster  # noqa: PLC0415

        nodes = self.nodes
        if isinstance(nodes, Client):
            check_slurm_partition(getattr(nodes, "cluster", None))
            self._client = nodes
            return
        if isinstance(nodes, (int, np.integer)) or (isinstance(nodes, str) and nodes == "localhost"):
            n = int(nodes) if not isinstance(nodes, str) else (os.cpu_count() or 1)
            if n < 1:
                raise ValueError(f"nodes must be a positive number of worker processes, got {nodes!r}")
            # ":0": the scheduler's HTTP server (there even without a dashboard) on a free port,
            # not Dask's 8787, which another cluster may hold.
            kwargs = {"n_workers": n, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0"}
            kwargs.update(self._cluster_kwargs)
            import dask  # noqa: PLC0415 - optional dependency

            # The nannies hand these settings to the worker processes they start.
            with dask.config.set(DASK_CONFIG):
                self._cluster = LocalCluster(**kwargs)
            self._client = Client(self._cluster)
            self._own_client = True
            return
        if isinstance(nodes, str) and _is_address(nodes):
            try:
                self._client = Client(nodes, timeout=self.connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise ClusterConnectionError(
                    f"cannot reach the Dask scheduler at {nodes} within {self.connect_timeout:g} s "
                    f"({type(exc).__name__}: {exc}); is `dask scheduler` running there and the "
                    "port open? (connect_timeout= sets the wait)"
                ) from None
            self._own_client = True
            return
        if isinstance(nodes, (list, tuple)) and nodes and all(isinstance(h, str) for h in nodes):
            self._start_ssh_cluster(list(nodes), worker_env or self.worker_env)
            return
        raise TypeError(
            "nodes must be 'localhost', a number of worker processes, a dask Client, a scheduler "
            f"address or a list of host names, got {nodes!r}"
        )

    def _start_ssh_cluster(self, nodes: list[str], python: str | None) -> None:
        """``SSHCluster`` on ``nodes`` (scheduler on the first), after a check of every host
        over SSH: SSHCluster itself only says "failed to start" when a host refuses the login
        or its Python lacks dask or rustrates."""
        from dask.distributed import Client, SSHCluster  # noqa: PLC0415

        hosts = nodes if len(nodes) > 1 else [nodes[0], nodes[0]]
        options = _per_host_options(self.connect_options, len(nodes), len(hosts))
        # SSHCluster's default remote Python is this process's own path.
        python = python or sys.executable
        _check_ssh_hosts(hosts, options, python, self.connect_timeout)
        kwargs: dict[str, Any] = {
            "connect_options": options,
            "remote_python": python,
            "worker_options": {"nthreads": 1},
            "scheduler_options": {"dashboard_address": None},
        }
        for key, value in self._cluster_kwargs.items():
            # Extra worker or scheduler options add to the defaults above.
            merge = key in ("worker_options", "scheduler_options")
            kwargs[key] = {**kwargs[key], **value} if merge else value
        try:
            self._cluster = SSHCluster(hosts, **kwargs)
        except Exception as exc:
            raise ClusterConnectionError(
                f"could not start Dask over SSH on {hosts} ({type(exc).__name__}: {exc}); every host "
                f"answered the check, so look at the Dask logs there (the scheduler on {hosts[0]} must be "
                "reachable from the others on its port)"
            ) from None
        self._client = Client(self._cluster)
        self._own_client = True
        # Started workers register a moment later; run() sizes chunks by the workers present.
        n_workers = (len(hosts) - 1) * int(kwargs["worker_options"].get("n_workers", 1))
        try:
            self._client.wait_for_workers(n_workers, timeout=self.connect_timeout)
        except (TimeoutError, OSError):
            joined = len(self._client.scheduler_info().get("workers", {}))
            self.close()
            raise ClusterConnectionError(
                f"{joined} of the {n_workers} Dask workers started on {hosts[1:]} joined the scheduler on "
                f"{hosts[0]} within {self.connect_timeout:g} s: the worker hosts must reach the scheduler's "
                "port there (a firewall?); connect_timeout= sets the wait"
            ) from None

    def _check_workers(self) -> None:
        client = self._client
        try:
            client.wait_for_workers(1, timeout=self.connect_timeout)
        except (TimeoutError, OSError) as exc:
            raise ClusterConnectionError(
                f"no Dask worker joined the scheduler {client.scheduler.address} within "
                f"{self.connect_timeout:g} s ({exc})"
            ) from None
        # A worker checked by an earlier call of this object is not asked again.
        new = sorted(set(client.scheduler_info().get("workers", {})) - self._checked_workers)
        if not new:
            return
        namespace: dict[str, Any] = {"__name__": "__main__"}
        exec(_CHECK_SOURCE, namespace)  # noqa: S102 - our own source, see _CHECK_SOURCE
        answers = client.run(namespace["rustrates_worker_check"], workers=new)
        missing = {addr: a for addr, a in answers.items() if a[0] != "ok"}
        if missing:
            listed = "; ".join(f"{addr} ({a[2]}): {a[1]}" for addr, a in missing.items())
            raise ImportError(
                f"{len(missing)} of {len(answers)} Dask workers cannot import rustrates: {listed}. "
                "Install rustrates (pip install rustrates) into the Python the workers run "
                "(worker_env= for SSH hosts)"
            )
        versions = {a[1] for a in answers.values()}
        if versions != {_rustrates.__version__}:
            raise ImportError(
                f"the Dask workers run rustrates {sorted(versions)}, this client "
                f"{_rustrates.__version__}; install the same version everywhere"
            )
        self._checked_workers.update(answers)

    def close(self) -> None:
        """Closes the client and the cluster this object started (not a Client passed in)."""
        if self._own_client and self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def __enter__(self) -> ClusterGridSearch:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the sweep ---------------------------------------------------------------------

    def run(
        self,
        circuit_template: str,
        param_grid: Any = None,
        param_map: Mapping[str, Any] | None = None,
        simulation_time: float | None = None,
        dt: float | None = None,
        permute_grid: bool | None = None,
        sampling_step_size: float | None = None,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, str] | None = None,
        chunk_size: int | None = None,
        worker_env: str | None = None,
        worker_file: str | os.PathLike[str] | None = None,
        add_template_info: bool = False,
        config_kwargs: Mapping[str, Any] | None = None,
        result_kwargs: Mapping[str, Any] | None = None,
        *,
        params: Any = None,
        step_size: float | None = None,
        permute: bool | None = None,
        **grid_search_kwargs: Any,
    ) -> str:
        """Runs the sweep on the cluster and returns the path of the HDF5 result file.

        The arguments are ``grid_search``'s, with the seed's aliases (``params`` for
        ``param_grid``, ``step_size`` for ``dt``, ``permute`` for ``permute_grid``), plus:

        chunk_size
            Points per task (default: the grid split evenly over the workers).
        worker_env
            SSH hosts: the Python on the workers.
        worker_file
            A Python file defining ``worker_postprocessing(results, result_map) -> DataFrame``;
            read here, applied on the workers to each chunk (``results`` as ``grid_search``
            returns it for the chunk's points). Its outputs are stored under
            ``Results/results``: concatenated along the columns when they share their index
            (one column per grid point, as PyRates' Welch-spectrum example), along the rows
            otherwise.
        add_template_info
            Also store ``TemplateInfo/variables`` (every variable's default), ``/source``
            (the template YAML) and ``/equations``.
        config_kwargs
            ``{'init_kwargs': {'backend': ..., 'solver': ...}}`` and other ``grid_search``
            keywords.
        result_kwargs
            Stored under ``AdditionalData/<key>``.
        **grid_search_kwargs
            ``summaries``, ``keep_traces``, ``cutoff``, ``backend``, ``solver``,
            ``float_precision``, ``rtol``/``atol``, ``regime``, ``initial_conditions``,
            ``trace_precision`` (as ``grid_search``'s) and PyRates' ignored keywords.

        The file has the engine's layout (``rustrates.read_results`` loads it lazily) plus
        the seed's pandas keys: ``Results/results`` (traces, summaries when only summaries
        were asked for, or the worker_file outputs), ``Results/result_map``,
        ``ParameterGrid/Grid_df``, ``Config/...``, ``AdditionalData/...`` and
        ``TemplateInfo/...``. Traces too large for memory are not copied into
        ``Results/results`` (a warning says so; use ``rustrates.read_results``).

        Chunks that fail every try (``retries``) do not stop the others: the file is still
        written, their points marked (status ``failed`` with the error in ``/status/error``,
        NaN outputs and NaN columns in ``Results/results``); then ``on_failure`` decides
        between a :class:`ClusterSweepWarning` and :class:`ClusterSweepError`, and
        ``failed`` lists them. The same call again computes only what is missing (chunks of
        an interrupted call and failed ones) and replaces the file with the complete one.
        """
        param_grid = _alias("param_grid", param_grid, "params", params)
        permute_grid = bool(_alias("permute_grid", permute_grid, "permute", permute) or False)
        if param_map is None:
            raise _core.argument_error("param_map", "param_map is required")

        extra = dict(grid_search_kwargs)
        init_kwargs = None
        for key, value in (config_kwargs or {}).items():
            if key == "init_kwargs":
                init_kwargs = value
            else:
                extra.setdefault(key, value)
        own = {k: extra.pop(k) for k in _OWN_KWARGS if k in extra}
        req = _core.build_request(
            "ClusterGridSearch.run",
            circuit_template,
            param_grid,
            param_map,
            simulation_time=simulation_time,
            dt=dt,
            step_size=step_size,
            inputs=inputs,
            outputs=outputs,
            sampling_step_size=sampling_step_size,
            permute_grid=permute_grid,
            cutoff=own.get("cutoff", 0.0),
            summaries=own.get("summaries"),
            keep_traces=own.get("keep_traces"),
            n_threads=own.get("n_threads"),
            profile=own.get("profile"),
            trace_precision=own.get("trace_precision", "float64"),
            regime=own.get("regime"),
            initial_conditions=own.get("initial_conditions"),
            init_kwargs=init_kwargs,
            extra=extra,
        )
        grid, pmap, ins, outs = req.grid, req.param_map, req.inputs, req.outputs
        t_value, dt_value, dts, cutoff = req.simulation_time, req.step_size, req.sampling_step_size, req.cutoff

        if self._client is None:
            self._connect(worker_env)
        workers = set(self._client.scheduler_info().get("workers", {}))
        n_workers = max(1, len(workers))
        if chunk_size is None:
            chunk_size = max(1, -(-grid.n_points // n_workers))
        if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise _core.argument_error("chunk_size", f"chunk_size must be a positive integer, got {chunk_size!r}")

        kwargs = {"template": req.template, "args": req.engine_args(), "chunk_size": int(chunk_size),
                  "trace_precision": req.trace_precision}
        # Built here first: bad arguments and template errors surface before any task runs,
        # and the fingerprint names and guards compute_dir.
        sweep = _new_sweep(kwargs)
        fingerprint = sweep.fingerprint
        compute_dir = self.compute_dir or Path.cwd() / f"rustrates_cgs_{fingerprint[:16]}"
        compute_dir.mkdir(parents=True, exist_ok=True)
        done = set(sweep.prepare_dir(os.fspath(compute_dir)))
        chunks = sweep.chunks()

        post_source = post_name = post_dir = None
        if worker_file is not None:
            post_name = os.fspath(worker_file)
            post_source = Path(post_name).read_text(encoding="utf-8")
            _check_worker_file(post_source, post_name)
            tag = hashlib.sha256(post_source.encode()).hexdigest()[:16]
            post_dir = compute_dir / "post" / tag
            post_dir.mkdir(parents=True, exist_ok=True)

        todo = [i for i in range(len(chunks)) if i not in done]
        self.last_run = {"chunks": len(chunks), "skipped": len(done), "computed": 0, "failed": 0}
        self.failed = []
        config = {
            "circuit_template": os.fspath(circuit_template), "simulation_time": t_value, "dt": dt_value,
            "sampling_step_size": dts if dts is not None else dt_value, "permute_grid": permute_grid,
            "chunk_size": int(chunk_size), "solver": req.solver, "backend": req.backend,
            "float_precision": req.precision, "cutoff": cutoff, "fingerprint": fingerprint,
        }
        final = compute_dir / RESULT_FILE
        staging = compute_dir / (RESULT_FILE + ".partial")
        try:
            futures = {}
            if todo:
                # Workers this object checked before are not asked again (a round trip each).
                if not workers or not workers <= self._checked_workers:
                    self._check_workers()
                payload = {"fingerprint": fingerprint, "post_source": post_source, "post_name": post_name,
                           # The template travels with the tasks: workers need not see the client's files.
                           "kwargs": dict(kwargs, template_files=sweep.template_files, template_cwd=os.getcwd())}
                futures = self._submit(payload, fingerprint, todo)

            def open_staging() -> tuple[Any, pd.Index]:
                # The keys that do not depend on the results, in the file the engine then
                # merges the chunks into (each as it is recorded; an earlier call's first).
                nodes, rest, labels = _seed_keys(sweep, grid.keys, config, pmap, ins, outs, result_kwargs,
                                                 circuit_template if add_template_info else None)
                _pandas_keys.put_prepared(staging, nodes, rest, create=True)
                merger = sweep.merger(os.fspath(compute_dir), os.fspath(staging))
                for i in sorted(done):
                    merger.add(i)
                return merger, labels

            # Opened when the first chunk comes back, not now: on a machine whose cores run
            # the workers, this ≈ 10 ms of work delays the start of the tasks being
            # dispatched (by ≈ 7 ms, measured), while after the first chunk a core is free.
            staging_file = _Once(open_staging)
            failures = self._collect(futures, sweep, chunks, len(done), compute_dir, post_dir, staging_file) if futures else []
            self.failed = failures
            self.last_run["failed"] = len(failures)

            if failures and len(failures) == len(chunks):
                raise _failure_error(failures, len(chunks), self.retries, compute_dir, None)
            merger, labels = staging_file()
            # Failed chunks are merged as marked points by the engine; they stay out of the
            # manifest, so the next call retries them and replaces this file.
            merged = merger.finish([(f["chunk"], f["error"]) for f in failures])
            failed_chunks = {f["chunk"] for f in failures}
            post_frames = None
            if post_dir is not None:
                post_frames = [None if i in failed_chunks else
                               _load_post(post_dir, i, sweep, compute_dir, chunks, post_source, post_name)
                               for i in range(len(chunks))]
            _add_results_key(os.fspath(staging), post_frames, chunks, req.keep_traces, merged, labels)
            with open(staging, "rb") as f:
                os.fsync(f.fileno())
            os.replace(staging, final)
        finally:
            staging.unlink(missing_ok=True)
        if failures:
            err = _failure_error(failures, len(chunks), self.retries, compute_dir, os.fspath(final))
            if self.on_failure == "raise":
                raise err
            warnings.warn(str(err), ClusterSweepWarning, stacklevel=2)
        return os.fspath(final)

    def _submit(self, payload: dict[str, Any], fingerprint: str, todo: list[int]) -> dict[Any, int]:
        """One task per chunk of ``todo``; returns future → chunk index."""
        if _payload_bytes(payload["kwargs"]) > _SCATTER_BYTES:
            # Large per-point inputs: sent to every worker once, not inside every task.
            # Replicated on all workers, so a dead worker does not lose it.
            payload = self._client.scatter(payload, broadcast=True, hash=False)
        run_id = uuid.uuid4().hex[:8]
        futures = {}
        for i in todo:
            fut = self._client.submit(
                run_chunk_task, payload, i, retries=self.retries, pure=False,
                key=f"rustrates-chunk-{fingerprint[:12]}-{run_id}-{i}",
            )
            futures[fut] = i
        return futures

    def _collect(
        self,
        futures: dict[Any, int],
        sweep: Any,
        chunks: list,
        n_done: int,
        compute_dir: Path,
        post_dir: Path | None,
        staging_file: Any,
    ) -> list[dict[str, Any]]:
        """Records each chunk in ``compute_dir`` as it comes back and merges it into the
        staging file (``staging_file()`` gives its merger); returns the chunks that failed
        every try, in chunk order."""
        from dask.distributed import as_completed  # noqa: PLC0415

        fingerprint = sweep.fingerprint
        failures: list[dict[str, Any]] = []
        bar = _ChunkProgress(len(chunks), n_done, self.progress)
        try:
            # with_results: Dask's own thread fetches each result as its task ends, rather
            # than this one asking for it afterwards (a round trip per chunk).
            for fut, out in as_completed(list(futures), with_results=True, raise_errors=False):
                i = futures[fut]
                try:
                    if fut.status != "finished":
                        out = fut.result()  # raises the task's error (a cancellation propagates)
                except Exception as exc:  # noqa: BLE001 - reported per chunk
                    start, end = chunks[i]
                    failures.append({
                        "chunk": i, "start": start, "end": end,
                        "labels": sweep.labels(start, end),
                        "error": f"{type(exc).__name__}: {exc}",
                    })
                    bar.update()
                    continue
                if out["fingerprint"] != fingerprint:
                    raise SweepError(
                        f"chunk {i} came back with fingerprint {out['fingerprint'][:16]}…, expected "
                        f"{fingerprint[:16]}…: the worker runs a different template or rustrates"
                    )
                if post_dir is not None:
                    _write_atomic(post_dir / f"chunk_{i:08d}.pkl", out["post"])
                sweep.record_part(os.fspath(compute_dir), i, out["data"])
                staging_file()[0].add(i)
                self.last_run["computed"] += 1
                bar.update()
        finally:
            bar.close()
            for fut in futures:
                fut.cancel()
        return sorted(failures, key=lambda f: f["chunk"])


class _Once:
    """Calls ``fn`` the first time it is called; returns that result from then on."""

    def __init__(self, fn: Any) -> None:
        self._fn = fn
        self._result: Any = None
        self._done = False

    def __call__(self) -> Any:
        if not self._done:
            self._result = self._fn()
            self._done = True
        return self._result


def _failure_error(
    failures: list[dict[str, Any]], n_chunks: int, retries: int, compute_dir: Path, path: str | None
) -> ClusterSweepError:
    shown = "; ".join(
        f"chunk {f['chunk']} (points {f['start']}..{f['end'] - 1}): {f['error']}" for f in failures[:3]
    )
    more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
    where = (
        f"{path} holds the other points, these marked with status 'failed' and NaN outputs"
        if path is not None else "no chunk was computed, so no file was written"
    )
    err = ClusterSweepError(
        f"{len(failures)} of {n_chunks} chunks failed after {retries} retries: {shown}{more}. "
        f"{where}; the same call again (same compute_dir {compute_dir}) computes only the failed chunks"
    )
    err.failed = failures
    err.path = path
    return err


#: ``grid_search`` keywords ``run`` takes through ``**grid_search_kwargs`` and hands to the one
#: request builder by name (the rest are flat PyRates settings or ignored keywords).
_OWN_KWARGS = ("summaries", "keep_traces", "cutoff", "n_threads", "profile", "trace_precision", "regime",
               "initial_conditions")


#: Payloads larger than this are scattered to the workers once instead of riding in each task.
_SCATTER_BYTES = 8 * 1024**2


def _payload_bytes(kwargs: Mapping[str, Any]) -> int:
    args = kwargs["args"]
    arrays = list(args["inputs"].values()) + list(args.get("grid_values") or []) + [args.get("grid_rows")]
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


def _alias(name: str, value: Any, alias: str, alias_value: Any) -> Any:
    if value is not None and alias_value is not None and value is not alias_value:
        raise TypeError(f"pass {name} or its alias {alias}, not both")
    return value if value is not None else alias_value


def _check_worker_file(source: str, name: str) -> None:
    try:
        tree = ast.parse(source, filename=name)
    except SyntaxError as exc:
        raise SyntaxError(f"worker_file {name}: {exc}") from None
    if not any(isinstance(n, ast.FunctionDef) and n.name == "worker_postprocessing" for n in tree.body):
        raise ValueError(f"worker_file {name} defines no function worker_postprocessing(results, result_map)")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_post(post_dir: Path, i: int, sweep: Any, compute_dir: Path, chunks: list, source: str, name: str) -> pd.DataFrame:
    """A chunk's worker_file output; chunks finished by an earlier call with another (or no)
    worker_file are postprocessed here from their part file."""
    path = post_dir / f"chunk_{i:08d}.pkl"
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)  # noqa: S301 - written by this package in compute_dir
    res = sweep.read_part(os.fspath(compute_dir / sweep.part_path(i)))
    frame = _apply_postprocessing(_postprocessor(source, name), res, f"chunk {i}")
    _write_atomic(path, pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))
    return frame


def _concat_post(frames: list[pd.DataFrame | None], res: Mapping[str, Any], chunks: list) -> pd.DataFrame:
    """The worker_file outputs of all chunks, along the columns when they share their index
    (one column per grid point, as PyRates' Welch example), along the rows otherwise. A failed
    chunk (None) stands in as NaN: the results frame its points would have been given to
    ``worker_postprocessing`` (their outputs are NaN in ``res``), on the shared index."""
    computed = [f for f in frames if f is not None]
    by_columns = all(f.index.equals(computed[0].index) for f in computed[1:])
    filled = []
    for i, frame in enumerate(frames):
        if frame is None:
            frame, _ = _chunk_frames(_points(res, *chunks[i]))
            if by_columns:
                frame = pd.DataFrame(np.nan, index=computed[0].index, columns=frame.columns)
        filled.append(frame)
    return pd.concat(filled, axis=1 if by_columns else 0)


def _points(res: Mapping[str, Any], start: int, end: int) -> dict[str, Any]:
    """The result dict restricted to points ``start..end``."""
    part = dict(res)
    part["labels"] = list(res["labels"])[start:end]
    part["grid"] = res["grid"][start:end]
    part["status"] = list(res["status"])[start:end]
    part["status_time"] = res["status_time"][start:end]
    for key in ("traces", "summaries"):
        if res[key] is not None:
            part[key] = res[key][start:end]
    return part


def _without_failed(res: Mapping[str, Any]) -> Mapping[str, Any]:
    """The labels and status of the points not marked failed (what warn_status reads)."""
    status = np.asarray(res["status"])
    keep = ~np.isin(status, [_rustrates.STATUS_NAMES[c] for c in _rustrates.FAILED_CODES])
    if keep.all():
        return res
    return {"labels": list(np.asarray(res["labels"])[keep]), "status": list(status[keep]),
            "status_time": np.asarray(res["status_time"])[keep]}


def _to_pandas(value: Any) -> Any:
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return value
    arr = np.asarray(value) if not isinstance(value, Mapping) else None
    if isinstance(value, Mapping):
        return pd.Series({str(k): v for k, v in value.items()})
    if arr.ndim == 2:
        return pd.DataFrame(arr)
    return pd.Series(arr.reshape(-1) if arr.ndim else [value])


def _seed_keys(
    sweep: Any,
    grid_keys: list[str],
    config: dict[str, Any],
    pmap: Mapping[str, Any],
    inputs: Mapping[str, Any],
    outputs: Mapping[str, str],
    result_kwargs: Mapping[str, Any] | None,
    template: str | None,
) -> tuple[list, list, pd.Index]:
    """The seed's pandas keys that do not depend on the results (``Results/result_map``,
    ``ParameterGrid/Grid_df``, ``Config/...``, ``AdditionalData/...``, ``TemplateInfo/...``),
    as :func:`_pandas_keys.prepare` gives them, and the labels (the frames' index). Written
    into a new staging file while the chunks run; the engine merges the chunks into it and
    ``_add_results_key`` completes it."""
    grid = sweep.grid()
    labels = sweep.labels()
    result_map = pd.DataFrame(grid, index=pd.Index(labels), columns=list(grid_keys))
    names = list(inputs)
    keys: list[tuple[str, Any]] = [
        ("Results/result_map", result_map),
        ("Config/simulation", pd.Series({k: (v if v is not None else np.nan) for k, v in config.items()}, dtype=object)),
        ("Config/outputs", pd.Series(dict(outputs), dtype=object)),
        ("Config/param_map", pd.DataFrame(
            np.array([(k, ", ".join(v["vars"]), ", ".join(map(str, v.get("nodes", v.get("edges", [])))))
                      for k, v in pmap.items()], dtype=object).reshape(-1, 3),
            columns=["key", "vars", "targets"], dtype=object,
        )),
        ("Config/input_names", pd.Series(names, dtype=object)),
    ]
    keys += [(f"Config/inputs/input_{i}", _to_pandas(inputs[name])) for i, name in enumerate(names)]
    keys += [(f"AdditionalData/{key}", _to_pandas(value)) for key, value in (result_kwargs or {}).items()]
    if template is not None:
        circuit = _rustrates.load_circuit(os.fspath(template))
        keys += [
            ("TemplateInfo/variables", pd.DataFrame(circuit.variables)),
            ("TemplateInfo/source", pd.Series([circuit.source_text], dtype=object)),
            ("TemplateInfo/equations", pd.Series([circuit.dump()], dtype=object)),
        ]
    # The same frame under the seed's second name: an HDF5 hard link, not a second copy.
    nodes, rest = _pandas_keys.prepare(keys, links=[("ParameterGrid/Grid_df", "Results/result_map")])
    return nodes, rest, result_map.index


def _add_results_key(
    path: str,
    post_frames: list[pd.DataFrame | None] | None,
    chunks: list,
    keep_traces: bool,
    merged: Mapping[str, Any],
    labels: pd.Index,
) -> None:
    """Adds ``Results/results`` to the merged file at ``path``: the worker_file outputs, or
    the engine's traces or summaries as ``grid_search`` returns them (``summaries_frame``).
    Summaries come from what the merge kept (``merged``) unless a point diverged, whose
    warning needs the file's status."""
    codes = merged["status_codes"]
    if post_frames is None and merged["summaries"] is not None and not np.isin(codes, _rustrates.DIVERGED_CODES).any():
        columns = pd.MultiIndex.from_tuples(
            [(name, stat) for name in _core.column_names(merged["columns"]) for stat in merged["summary_names"]],
            names=["output", "statistic"],
        )
        frame = pd.DataFrame(merged["summaries"], index=labels, columns=columns)
        _pandas_keys.put_keys(path, [("Results/results", frame)], create=False)
        return
    import tables  # noqa: PLC0415 - a dependency of the package; only the shape is read here

    has_traces, traces_bytes = keep_traces, 0
    if keep_traces:
        with tables.open_file(path, "r") as h5:
            traces_bytes = int(np.prod(h5.root.traces.shape)) * 8
    if has_traces and traces_bytes > PANDAS_KEYS_MAX_BYTES and post_frames is None:
        warnings.warn(
            f"the traces ({traces_bytes / 1e9:.1f} GB) are too large to copy into the pandas key "
            f"Results/results; {path} holds them in the engine's layout: load them with "
            "rustrates.read_results(path) or h5py",
            _core.RustratesWarning,
            stacklevel=3,
        )
        return
    res = _rustrates.read_results(path)
    # Failed points have their own warning, with the error (at the end of run).
    _core.warn_status(_without_failed(res))
    if post_frames is not None:
        frame = _concat_post(post_frames, res, chunks)
    else:
        frame = _core.traces_frame(res) if res["traces"] is not None else _core.summaries_frame(res)
    _pandas_keys.put_keys(path, [("Results/results", frame)], create=False)


__all__ = [
    "ClusterConnectionError", "ClusterGridSearch", "ClusterSweepError", "ClusterSweepWarning", "DASK_CONFIG", "RESULT_FILE",
    "SlurmPartitionError", "check_slurm_partition", "run_chunk_task",
]
