"""The client: ``ClusterGridSearch`` connects to (or starts) the cluster, checks its
workers, sends one task per chunk not yet recorded, records each returned part with the
engine and merges it into the staging file, and completes the result file."""

from __future__ import annotations

import ast
import hashlib
import os
import sys
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import _core, _pandas_keys, _rustrates
from .._rustrates import SweepError
from . import _worker
from ._errors import ClusterConnectionError, ClusterSweepError, ClusterSweepWarning
from ._keys import _add_results_key, _load_post, _seed_keys, _write_atomic
from ._slurm import check_slurm_partition
from ._ssh import _check_ssh_hosts, _per_host_options
from ._worker import _new_sweep, run_chunk_task

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


def _is_address(nodes: str) -> bool:
    return "://" in nodes or (":" in nodes and nodes.rsplit(":", 1)[1].isdigit())


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
        exec(_worker._CHECK_SOURCE, namespace)  # noqa: S102 - our own source, see _worker._CHECK_SOURCE
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
            ``random_starts``, ``refine``, ``trace_precision``, ``compress`` (as ``grid_search``'s)
            and PyRates' ignored keywords. With ``refine`` the engine decides every pass here
            and the workers compute each pass's points as chunks (recorded under
            ``compute_dir/passes``, so a repeated call resumes); the file holds the point set
            ``grid_search(refine=...)`` gives.

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
        # grid_search's own keywords go to the request builder by name, the rest as PyRates'.
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
            init_kwargs=init_kwargs,
            extra=extra,
            **own,
        )
        grid, pmap, ins, outs = req.grid, req.param_map, req.inputs, req.outputs
        t_value, dt_value, dts, cutoff = req.simulation_time, req.step_size, req.sampling_step_size, req.cutoff

        if self._client is None:
            self._connect(worker_env)
        workers = set(self._client.scheduler_info().get("workers", {}))
        n_workers = max(1, len(workers))
        chunk_size_given = chunk_size is not None
        if chunk_size is None:
            chunk_size = max(1, -(-grid.n_points // n_workers))
        if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise _core.argument_error("chunk_size", f"chunk_size must be a positive integer, got {chunk_size!r}")

        kwargs = {
            "template": req.template,
            "args": req.engine_args(),
            "chunk_size": int(chunk_size),
            "trace_precision": req.trace_precision,
            "compress": req.compress,
        }
        # Built here first: bad arguments and template errors surface before any task runs,
        # and the fingerprint names and guards compute_dir.
        sweep = _new_sweep(kwargs)
        fingerprint = sweep.fingerprint
        compute_dir = self.compute_dir or Path.cwd() / f"rustrates_cgs_{fingerprint[:16]}"
        compute_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "circuit_template": os.fspath(circuit_template),
            "simulation_time": t_value,
            "dt": dt_value,
            "sampling_step_size": dts if dts is not None else dt_value,
            "permute_grid": permute_grid,
            "chunk_size": int(chunk_size),
            "solver": req.solver,
            "backend": req.backend,
            "float_precision": req.precision,
            "cutoff": cutoff,
            "fingerprint": fingerprint,
        }
        if sweep.refines:
            if worker_file is not None:
                raise _core.argument_error(
                    "worker_file", "worker_file is not supported with refine= (its chunks are the passes' points)"
                )
            seed = (config, pmap, ins, outs, result_kwargs, circuit_template if add_template_info else None)
            size = int(chunk_size) if chunk_size_given else None
            return self._run_refined(sweep, kwargs, size, n_workers, compute_dir, seed, req.keep_traces)
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
        final = compute_dir / RESULT_FILE
        staging = compute_dir / (RESULT_FILE + ".partial")
        try:
            futures = {}
            if todo:
                # Workers this object checked before are not asked again (a round trip each).
                if not workers or not workers <= self._checked_workers:
                    self._check_workers()
                payload = {
                    "fingerprint": fingerprint,
                    "post_source": post_source,
                    "post_name": post_name,
                    # The template travels with the tasks: workers need not see the client's files.
                    "kwargs": dict(kwargs, template_files=sweep.template_files, template_cwd=os.getcwd()),
                }
                futures = self._submit(payload, fingerprint, todo)

            def open_staging() -> tuple[Any, pd.Index]:
                # The keys that do not depend on the results, in the file the engine then
                # merges the chunks into (each as it is recorded; an earlier call's first).
                nodes, rest, labels = _seed_keys(
                    sweep,
                    grid.keys,
                    config,
                    pmap,
                    ins,
                    outs,
                    result_kwargs,
                    circuit_template if add_template_info else None,
                )
                _pandas_keys.put_prepared(staging, nodes, rest, create=True)
                merger = sweep.merger(os.fspath(compute_dir), os.fspath(staging))
                for i in sorted(done):
                    merger.add(i)
                return merger, labels

            # Opened when the first chunk comes back, not now: on a machine whose cores run
            # the workers, this ≈ 10 ms of work delays the start of the tasks being
            # dispatched (by ≈ 7 ms, measured), while after the first chunk a core is free.
            staging_file = _Once(open_staging)
            failures = (
                self._collect(futures, sweep, chunks, len(done), compute_dir, post_dir, staging_file) if futures else []
            )
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
                post_frames = [
                    None
                    if i in failed_chunks
                    else _load_post(post_dir, i, sweep, compute_dir, chunks, post_source, post_name)
                    for i in range(len(chunks))
                ]
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

    def _run_refined(
        self,
        sweep: Any,
        kwargs: dict[str, Any],
        chunk_size: int | None,
        n_workers: int,
        compute_dir: Path,
        seed: tuple,
        keep_traces: bool,
    ) -> str:
        """``refine=``: the engine runs the refinement and decides every pass; each pass's
        points are a sweep of their own, cut into chunks for the workers and recorded under
        ``compute_dir/passes/<fingerprint>`` (so a call interrupted between or within passes
        resumes: the recorded chunks are read back, not computed again). The engine then
        writes the point set as ``grid_search(refine=...)`` does; the pandas keys follow."""
        passes_dir = compute_dir / "passes"
        self.last_run = {"chunks": 0, "skipped": 0, "computed": 0, "failed": 0, "passes": 0}
        self.failed = []

        def run_pass(points: np.ndarray, backend: str) -> tuple[Any, str]:
            size = chunk_size or max(1, -(-len(points) // n_workers))
            args = dict(
                kwargs["args"],
                grid_values=None,
                grid_rows=np.ascontiguousarray(points),
                permute=False,
                refine=None,
                backend=backend,
            )
            pass_kwargs = dict(kwargs, args=args, chunk_size=int(size))
            pass_sweep = _new_sweep(pass_kwargs)
            fingerprint = pass_sweep.fingerprint
            pass_dir = passes_dir / fingerprint[:16]
            pass_dir.mkdir(parents=True, exist_ok=True)
            done = set(pass_sweep.prepare_dir(os.fspath(pass_dir)))
            chunks = pass_sweep.chunks()
            todo = [i for i in range(len(chunks)) if i not in done]
            self.last_run["passes"] += 1
            self.last_run["chunks"] += len(chunks)
            self.last_run["skipped"] += len(done)
            if todo:
                workers = set(self._client.scheduler_info().get("workers", {}))
                if not workers or not workers <= self._checked_workers:
                    self._check_workers()
                payload = {
                    "fingerprint": fingerprint,
                    "post_source": None,
                    "post_name": None,
                    "kwargs": dict(pass_kwargs, template_files=pass_sweep.template_files, template_cwd=os.getcwd()),
                }
                futures = self._submit(payload, fingerprint, todo)
                failures = self._collect(futures, pass_sweep, chunks, len(done), pass_dir, None, None)
                if failures:
                    self.failed = failures
                    self.last_run["failed"] = len(failures)
                    shown = "; ".join(f"chunk {f['chunk']}: {f['error']}" for f in failures[:3])
                    err = ClusterSweepError(
                        f"refine pass {self.last_run['passes']}: {len(failures)} of {len(chunks)} chunks failed "
                        f"after {self.retries} retries ({shown}); refine needs every point of a pass to decide "
                        f"the next, so no file was written. The finished passes and chunks are kept in "
                        f"{passes_dir}: the same call again computes only what is missing"
                    )
                    err.failed = failures
                    err.path = None
                    raise err
            return pass_sweep, os.fspath(pass_dir)

        final = compute_dir / RESULT_FILE
        staging = compute_dir / (RESULT_FILE + ".partial")
        try:
            sweep.run_refined(os.fspath(staging), run_pass)
            res = _rustrates.read_results(os.fspath(staging))
            nodes, rest, labels = _seed_keys(_PointSet(res), list(res["grid_keys"]), *seed)
            _pandas_keys.put_prepared(staging, nodes, rest, create=False)
            # What a chunked sweep's merge returns, from the file the engine wrote.
            code_of = {name: code for code, name in _rustrates.STATUS_NAMES.items()}
            summaries = res["summaries"]
            merged = {
                "status_codes": np.array([code_of[s] for s in res["status"]], dtype=np.int64),
                # With traces the key holds them, read back from the file (as after a merge).
                "summaries": None
                if summaries is None or res["traces"] is not None
                else summaries.reshape(len(summaries), -1),
                "columns": res["columns"],
                "summary_names": res["summary_names"],
            }
            _add_results_key(os.fspath(staging), None, [], keep_traces, merged, labels)
            with open(staging, "rb") as f:
                os.fsync(f.fileno())
            os.replace(staging, final)
        finally:
            staging.unlink(missing_ok=True)
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
                run_chunk_task,
                payload,
                i,
                retries=self.retries,
                pure=False,
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
        staging file (``staging_file()`` gives its merger; None: recorded only); returns the chunks that failed
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
                    failures.append(
                        {
                            "chunk": i,
                            "start": start,
                            "end": end,
                            "labels": sweep.labels(start, end),
                            "error": f"{type(exc).__name__}: {exc}",
                        }
                    )
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
                if staging_file is not None:
                    staging_file()[0].add(i)
                self.last_run["computed"] += 1
                bar.update()
        finally:
            bar.close()
            for fut in futures:
                fut.cancel()
        return sorted(failures, key=lambda f: f["chunk"])


class _PointSet:
    """A results file's point set where ``_seed_keys`` expects a sweep (its grid and labels)."""

    def __init__(self, res: Mapping[str, Any]) -> None:
        self._res = res

    def grid(self) -> np.ndarray:
        return np.asarray(self._res["grid"])

    def labels(self) -> list[str]:
        return list(self._res["labels"])


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
    shown = "; ".join(f"chunk {f['chunk']} (points {f['start']}..{f['end'] - 1}): {f['error']}" for f in failures[:3])
    more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
    where = (
        f"{path} holds the other points, these marked with status 'failed' and NaN outputs"
        if path is not None
        else "no chunk was computed, so no file was written"
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
_OWN_KWARGS = (
    "summaries",
    "keep_traces",
    "cutoff",
    "n_threads",
    "profile",
    "trace_precision",
    "compress",
    "regime",
    "initial_conditions",
    "random_starts",
    "refine",
)


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
