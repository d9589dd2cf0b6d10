"""One line per job: redrawn in place on a terminal, a line per change in logs, nothing when quiet."""

import io

from l2l_utils.harness.progress import JobBoard


def test_lines_mode_prints_each_change():
    out = io.StringIO()
    board = JobBoard(["a/seed0", "b/seed0"], out, "auto")  # not a terminal: lines
    board.note("Dask dashboard: http://127.0.0.1:8787/status")
    board.update("a/seed0", "running", "host1")
    board.update("a/seed0", "running", "host1")  # no change, no line
    board.update("a/seed0", "done")
    board.update("b/seed0", "failed", "ValueError: bad")
    board.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "Dask dashboard: http://127.0.0.1:8787/status"
    assert lines[1].split() == ["running", "a/seed0", "00:00", "host1"]
    assert lines[2].split()[:2] == ["done", "a/seed0"] and len(lines) == 5
    assert lines[3].startswith("failed   b/seed0") and lines[3].endswith("ValueError: bad")
    assert lines[4] == "2 jobs: 1 done · 1 failed"


def test_live_mode_redraws_one_block_and_quiet_prints_nothing():
    out = io.StringIO()
    board = JobBoard(["a/seed0", "a/seed1"], out, "live")
    board.update("a/seed0", "running")
    board.close()
    text = out.getvalue()
    last = text.split("\x1b[F\x1b[F\x1b[F")[-1]  # the final block, drawn over the previous one
    assert [line.split()[0] for line in last.replace("\x1b[2K", "").splitlines()] == ["running", "queued", "2"]
    quiet = io.StringIO()
    board = JobBoard(["a/seed0"], quiet, "quiet")
    board.update("a/seed0", "done")
    board.close()
    assert quiet.getvalue() == "" and board.counts() == "1 jobs: 1 done"
