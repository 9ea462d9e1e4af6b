"""Progress display for long runs: tqdm when installed (``tqdm.auto`` picks the notebook
widget in Jupyter), otherwise one line on stderr rewritten in place."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Callable ``(done_points, total_points)`` handed to the engine, which calls it between
    blocks with the GIL held."""

    def __init__(self, description: str = "rustrates") -> None:
        self._description = description
        self._bar: Any = None
        self._start = time.perf_counter()
        self._last_line = 0.0
        self._done = 0
        try:
            from tqdm.auto import tqdm  # noqa: PLC0415 - optional dependency
        except ImportError:
            self._tqdm = None
        else:
            self._tqdm = tqdm

    def __call__(self, done: int, total: int) -> None:
        if self._tqdm is not None:
            if self._bar is None:
                self._bar = self._tqdm(total=total, desc=self._description, unit="pt")
            self._bar.update(done - self._done)
            self._done = done
            return
        self._done = done
        now = time.perf_counter()
        # Rewriting a terminal line costs little, but a notebook appends each write:
        # at most a few updates per second.
        if done < total and now - self._last_line < 0.2:
            return
        self._last_line = now
        elapsed = now - self._start
        pct = 100.0 * done / total if total else 100.0
        eta = elapsed / done * (total - done) if done else float("nan")
        sys.stderr.write(
            f"\r{self._description}: {done}/{total} points ({pct:5.1f}%) "
            f"{elapsed:6.1f} s elapsed, ETA {eta:6.1f} s"
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._done:
            sys.stderr.write("\n")
            sys.stderr.flush()


def make_progress(enabled: bool, description: str) -> Progress | None:
    return Progress(description) if enabled else None
