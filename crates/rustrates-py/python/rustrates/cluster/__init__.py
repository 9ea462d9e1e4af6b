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


The package's modules, each testable without a cluster: ``_client`` (``ClusterGridSearch``:
connecting, submitting, recording, merging), ``_worker`` (what a task runs), ``_ssh`` and
``_slurm`` (the checks before Dask starts), ``_keys`` (the pandas keys of the result file).
"""

from __future__ import annotations

from ._client import DASK_CONFIG, RESULT_FILE, ClusterGridSearch
from ._errors import ClusterConnectionError, ClusterSweepError, ClusterSweepWarning
from ._slurm import SlurmPartitionError, check_slurm_partition
from ._worker import run_chunk_task

__all__ = [
    "ClusterConnectionError",
    "ClusterGridSearch",
    "ClusterSweepError",
    "ClusterSweepWarning",
    "DASK_CONFIG",
    "RESULT_FILE",
    "SlurmPartitionError",
    "check_slurm_partition",
    "run_chunk_task",
]
