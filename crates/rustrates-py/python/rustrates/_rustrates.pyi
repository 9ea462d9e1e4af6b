"""Type stubs of the compiled extension ``rustrates._rustrates`` (thin bindings of the Rust
engine; the public API is in ``rustrates``)."""

from collections.abc import Callable
from os import PathLike
from typing import Any, TypedDict, final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "__version__",
    "ChunkMerger",
    "Circuit",
    "ClusterSweep",
    "DIVERGED_CODES",
    "EquationError",
    "FAILED_CODES",
    "REFINE_LEVEL_KEY",
    "REGIME_CODES",
    "RustratesError",
    "STATUS_NAMES",
    "SolverError",
    "SweepArgs",
    "SweepError",
    "TemplateError",
    "load_circuit",
    "read_bytes",
    "read_results",
    "refine_regular_view",
    "run_sweep",
    "write_pytables_nodes",
]

__version__: str

class Diagnostic(TypedDict):
    code: str
    message: str
    file: str | None
    line: int | None
    col: int | None
    path: str
    severity: str
    help: str | None

class RustratesError(Exception):
    """Base class of rustrates' errors. The message holds every diagnostic rendered as
    ``file:line:col: code: message``."""

    diagnostics: list[Diagnostic]

class TemplateError(RustratesError):
    """A template could not be loaded (YAML, paths, inheritance)."""

class EquationError(RustratesError):
    """An equation in a template is invalid."""

class SolverError(RustratesError):
    """The simulation could not run (settings, inputs, compiling)."""

class SweepError(RustratesError):
    """The sweep's grid, param_map, inputs or outputs are invalid."""

@final
class Circuit:
    """A loaded circuit template."""

    name: str
    nodes: list[str]
    warnings: list[str]
    source_text: str
    @property
    def variables(self) -> list[dict[str, Any]]:
        """Every variable: ``name`` (node/op/var), ``kind`` (state, constant, input,
        variable), ``value``, ``node``."""
    def dump(self) -> str:
        """The resolved equations of every node and the edge list."""
    def jacobian(
        self, values: list[tuple[str, float]] | None = None, t: float = 0.0
    ) -> tuple[list[str], list[list[float]]]:
        """The Jacobian at the given state/parameter values: (state names, rows)."""
    def nodes_having(self, node: str, var: str, argument: str = "node_vars") -> list[str]:
        """The nodes ``node`` names (a path, or ``all`` at any level) that have ``var``
        (``op/var``), in circuit order."""
    def value_targets(self, node: str, var: str, argument: str = "node_vars") -> list[str]:
        """Where an array of values for ``var`` on ``node`` goes: the elements
        ``node/var[i]`` of a vector variable, or ``node/var`` of each node ``nodes_having`` names."""

REGIME_CODES: dict[int, str]
"""`{code: name}` of the `regime` summary."""
STATUS_NAMES: dict[int, str]
"""`{code: name}` of a point's status: ``/status/code`` of a results file, the names of the
result dict's ``status``."""
DIVERGED_CODES: tuple[int, ...]
"""The status codes of points the solver gave up on (values NaN from ``status_time``)."""
FAILED_CODES: tuple[int, ...]
"""The status codes of points never computed (their chunk failed on every try)."""

def load_circuit(path: str) -> Circuit:
    """Load and check a template (dotted path or ``file.yaml/Name``)."""

class SweepResultDict(TypedDict):
    circuit_name: str
    labels: list[str]
    grid_keys: list[str]
    grid: NDArray[np.float64]  # (points, keys)
    time: NDArray[np.float64]  # (n_time,)
    n_time: int
    columns: list[tuple[str, str]]  # (node, output key)
    traces: NDArray[np.float64] | None  # (points, time, columns); None from run_sweep(out=...)
    traces_in_file: bool  # only when written to a file: the file keeps traces (read_results reads them)
    summaries: NDArray[np.float64] | None  # (points, columns, statistics)
    summary_names: list[str]
    status: list[str]  # 'ok', 'nonfinite', 'step_too_small', 'failed' (chunk not computed)
    status_time: NDArray[np.float64]  # NaN where ok
    backend: str | None
    out: str  # only when written to a file
    notes: list[str]  # from run_sweep: what the user should know (threads capped, a part recomputed)

@final
class SweepArgs:
    """One sweep's arguments, checked and turned into the engine's spec once; what
    ``run_sweep`` and ``ClusterSweep`` take. ``grid_values`` (one 1-D array per key, permuted
    or zipped) or ``grid_rows`` (points × keys); inputs are numbers or C-contiguous float64
    arrays of shape (steps,) or (steps, points)."""

    def __new__(
        cls,
        *,
        grid_keys: list[str],
        grid_values: list[NDArray[np.float64]] | None = None,
        grid_rows: NDArray[np.float64] | None = None,
        permute: bool = False,
        param_map: dict[str, dict[str, list[Any]]],
        simulation_time: float,
        step_size: float,
        sampling_step_size: float | None = None,
        inputs: dict[str, float | NDArray[np.float64]],
        outputs: dict[str, str],
        solver: str = "euler",
        backend: str = "auto",
        precision: str = "float64",
        cutoff: float = 0.0,
        summaries: list[str] = ...,
        keep_traces: bool = True,
        threads: int | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        regime: list[tuple[str, float]] | None = None,
        initial_conditions: list[list[tuple[str, float]]] = ...,
        random_starts: tuple[int, int, list[tuple[str, float, float]]] | None = ...,
        refine: tuple[int, str, float] | None = None,
    ) -> SweepArgs: ...
    @property
    def n_points(self) -> int:
        """Number of grid points."""

def run_sweep(
    template: str,
    args: SweepArgs,
    *,
    out: str | PathLike[str] | None = None,
    progress: Callable[[int, int], object] | None = None,
    overwrite: bool = False,
    trace_precision: str = "float64",
    compress: bool = False,
) -> SweepResultDict:
    """Run a sweep with the GIL released. ``progress(done, total)`` is called about every
    100 ms; Ctrl-C stops the run after the blocks in flight."""

def read_results(
    path: str | PathLike[str],
    points: tuple[int, int] | None = None,
    outputs: list[str] | None = None,
    traces: bool = True,
    summaries: bool = True,
) -> SweepResultDict:
    """Load a complete results file, or only the points ``start..end``, the output columns
    ``outputs`` selects, with or without traces and summaries."""

def write_pytables_nodes(
    path: str | PathLike[str],
    create: bool,
    nodes: list[tuple[str, str, Any, list[tuple[str, str | bytes | bool | int]]]],
) -> None:
    """Write HDF5 nodes as PyTables lays them out: ``(path, kind, data, attrs)`` with kind
    ``"group"`` (data None), ``"array"`` (data ``(element, shape, bytes)``, element ``"f8"``,
    ``"i8"``, ``"i1"`` or ``"S<n>"``), ``"object"`` (data: pickle bytes), ``"link"`` (data:
    the target's path) or ``"traces_block"`` (data None: the file's ``/traces`` as the block of
    the traces frame, ``[time, points × columns]``). A new file when ``create``."""

@final
class ClusterSweep:
    """One sweep cut into chunks, as the ``ClusterGridSearch`` client and its Dask workers see
    it: a :class:`SweepArgs` and ``chunk_size``; on a worker, ``template_files`` (the client's
    ``template_files``) and ``template_cwd`` (the client's working directory) load the
    template without the client's filesystem. The engine's checks that need no compile run
    at construction."""

    def __new__(
        cls,
        template: str,
        args: SweepArgs,
        *,
        chunk_size: int,
        template_files: list[tuple[str, str, str]] | None = None,
        template_cwd: str | None = None,
        trace_precision: str = "float64",
        compress: bool = False,
    ) -> ClusterSweep: ...
    @property
    def fingerprint(self) -> str:
        """SHA-256 of template source, grid and settings (names and guards a compute_dir)."""
    @property
    def circuit_name(self) -> str:
        """Label prefix of the points (``Net3`` → ``Net3_0``, ...)."""
    @property
    def refines(self) -> bool:
        """Whether the sweep refines (``refine=``): it runs with ``run_refined``, not by chunks."""
    @property
    def backend(self) -> str:
        """The spec's back end (``auto`` unless one was named; a refine pass's is the one
        chosen for the whole refined sweep)."""
    def run_refined(
        self,
        out: str | PathLike[str],
        run_pass: Callable[[NDArray[np.float64], str], tuple[ClusterSweep, str | PathLike[str]]],
    ) -> None:
        """Runs a refining sweep into the results file ``out`` (replaced): the engine decides
        each pass and writes the point set as ``grid_search(refine=...)``; ``run_pass(points,
        backend)`` computes a pass (its grid rows and the back end of every pass) and returns
        the pass's ``ClusterSweep`` and the directory holding all its recorded chunks. What
        ``run_pass`` raises is raised here."""
    @property
    def template_files(self) -> list[tuple[str, str, str]]:
        """``(absolute path, canonical path, text)`` of every template file the circuit was
        read from."""
    def grid(self) -> NDArray[np.float64]:
        """The grid values, points × keys in point order."""
    def labels(self, start: int = 0, end: int | None = None) -> list[str]:
        """The labels of points ``start..end`` (all by default), as the engine writes them."""
    def part_path(self, index: int) -> str:
        """Chunk ``index``'s part file, relative to the sweep's directory."""
    def chunks(self) -> list[tuple[int, int]]:
        """``(start, end)`` point range of each chunk."""
    def prepare_dir(self, dir: str | PathLike[str]) -> list[int]:
        """Creates ``dir`` for this sweep or checks it holds this sweep; returns the chunks
        already recorded."""
    def run_chunk(self, index: int, dir: str | PathLike[str]) -> str:
        """Runs chunk ``index`` into the fresh directory ``dir``; returns its part file's path
        relative to ``dir``."""
    def record_part(self, dir: str | PathLike[str], index: int, data: bytes) -> None:
        """Records chunk ``index`` from its part file's bytes in ``dir`` (the engine's
        ``record_part_bytes``: the part durably in place, then its manifest line)."""
    def merger(self, dir: str | PathLike[str], out: str | PathLike[str]) -> ChunkMerger:
        """A merge of the parts recorded in ``dir`` into the existing HDF5 file ``out`` (a
        staging file; its other contents stay), chunk by chunk."""
    def read_part(self, part: str | PathLike[str]) -> SweepResultDict:
        """A finished part file of this sweep as the result dict of its points (the
        engine's part reader; labels keep their sweep-wide numbers)."""

@final
class ChunkMerger:
    def add(self, chunk: int) -> None:
        """Copies recorded chunk ``chunk`` into the file (its part's SHA-256 checked)."""
    def finish(self, failed: list[tuple[int, str]]) -> int:
        """Writes the chunks in ``failed`` (index, error) as failed points, checks every
        other chunk was added, completes the file. Returns the number of failed points."""

def read_bytes(path: str | PathLike[str]) -> bytes:
    """A file's bytes, read without the GIL."""

REFINE_LEVEL_KEY: str

def refine_regular_view(keys: list[str], values: list[list[float]]) -> tuple[list[list[float]], list[int]] | None:
    """The finest lattice of a refined point set, each node filled from the nearest computed
    point: ``(lattice values per key, source point per node)``, first key fastest."""
