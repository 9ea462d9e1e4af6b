"""The cluster mode's exceptions and warning."""

from __future__ import annotations

from typing import Any

from .. import _core
from .._rustrates import SweepError


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
