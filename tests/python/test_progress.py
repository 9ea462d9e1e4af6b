"""Progress output when stderr is a log file, not a terminal (issue 17, item 6)."""

from __future__ import annotations

import io

from rustrates import _progress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drive(monkeypatch, stream, calls: int) -> str:
    monkeypatch.setattr(_progress.sys, "stderr", stream)
    bar = _progress.Progress("sweep")
    bar._tqdm = None  # the plain-text display, whether or not tqdm is installed
    for done in range(1, calls + 1):
        bar(done, calls)
    bar.close()
    return stream.getvalue()


def test_log_file_gets_a_line_per_tenth_not_every_update(monkeypatch):
    text = drive(monkeypatch, io.StringIO(), 1000)
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    # One line per tenth (the first call opens tenth 0) and none in between: 11 lines.
    assert len(lines) == 11, lines
    assert lines[-1].startswith("sweep: 1000/1000 points (100.0%)")
    assert [line.split()[1] for line in lines[:3]] == ["1/1000", "100/1000", "200/1000"]


def test_terminal_line_is_rewritten_in_place(monkeypatch):
    text = drive(monkeypatch, FakeTerminal(), 50)
    # Updates closer than 0.2 s are skipped; the first and the last are drawn, one line.
    assert text.count("\r") >= 2 and text.count("\n") == 1
    assert text.rstrip("\n").rsplit("\r", 1)[-1].startswith("sweep: 50/50 points")
