"""``dask_jobqueue.SLURMCluster``: the partitions its job script asks for, checked against
``sinfo`` at once instead of waiting for workers whose ``sbatch`` was refused."""

from __future__ import annotations

import shlex
import subprocess
import sys
from typing import Any

from ._errors import ClusterConnectionError


class SlurmPartitionError(ValueError):
    """A ``dask_jobqueue.SLURMCluster`` asks for a partition this Slurm does not have."""


def _requested_partitions(job_header: str) -> list[str]:
    """The partitions named by the ``#SBATCH -p``/``--partition`` lines of a job script."""
    words: list[str] = []
    for line in job_header.splitlines():
        if line.startswith("#SBATCH"):
            words += shlex.split(line[len("#SBATCH") :])
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
