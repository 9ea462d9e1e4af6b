"""Progress display for long runs: tqdm when installed (``tqdm.auto`` picks the notebook
widget in Jupyter), otherwise one line on stderr rewritten in place — or, when stderr is not a
terminal (a batch job's log file), a whole line now and then instead of hundreds of ``\r``
updates."""

from __future__ import annotations

import sys
import time
from typing import Any

#: Seconds between two progress lines in a log file when a tenth of the run takes longer.
LOG_INTERVAL = 30.0


class Progress:
    """Callable ``(done_points, total_points)`` handed to the engine, which calls it between
    blocks with the GIL held."""

    def __init__(self, description: str = "rustrates") -> None:
        self._description = description
        self._bar: Any = None
        self._start = time.perf_counter()
        self._last_line = 0.0
        self._done = 0
        isatty = getattr(sys.stderr, "isatty", None)
        self._terminal = bool(isatty and isatty())
        self._logged_tenth = -1
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
        elapsed = now - self._start
        pct = 100.0 * done / total if total else 100.0
        eta = elapsed / done * (total - done) if done else float("nan")
        line = f"{self._description}: {done}/{total} points ({pct:5.1f}%) {elapsed:6.1f} s elapsed, ETA {eta:6.1f} s"
        if not self._terminal:
            # A log file keeps every write: one line per tenth of the run, or every
            # LOG_INTERVAL seconds when tenths are slow, and the last one.
            tenth = int(10 * done / total) if total else 10
            if done < total and tenth <= self._logged_tenth and now - self._last_line < LOG_INTERVAL:
                return
            self._logged_tenth = max(tenth, self._logged_tenth)
            self._last_line = now
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
            return
        # Rewriting a terminal line costs little, but a notebook appends each write:
        # at most a few updates per second.
        if done < total and now - self._last_line < 0.2:
            return
        self._last_line = now
        sys.stderr.write("\r" + line)
        sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._done and self._terminal:
            sys.stderr.write("\n")
            sys.stderr.flush()


def make_progress(enabled: bool, description: str) -> Progress | None:
    return Progress(description) if enabled else None
