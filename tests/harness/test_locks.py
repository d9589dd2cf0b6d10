"""A folder held by one process at a time; the hold ends with the process, however it ends."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from l2l_utils.harness import locks

REPO = Path(__file__).resolve().parents[2]
HOLD = "import sys, time; from l2l_utils.harness.locks import hold; hold(sys.argv[1], '(test)'); print('held', flush=True); time.sleep(60)"


def test_a_second_process_cannot_hold_the_folder_until_the_first_is_killed(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(locks.FolderBusy, match=rf"in use by pid {other.pid} on .* \(test\)"):
            locks.hold(tmp_path)
    finally:
        other.kill()
        other.wait()
    deadline = time.time() + 10
    while True:  # killed: nothing stale is left to clear
        try:
            locks.hold(tmp_path)
            break
        except locks.FolderBusy:
            assert time.time() < deadline
            time.sleep(0.1)
    assert locks.hold(tmp_path) == tmp_path.resolve()  # again from the same process: fine
    with pytest.raises(locks.FolderBusy, match="in use by this process"):  # unless that is refused
        locks.hold(tmp_path, again=False)
    locks.release(tmp_path)
    locks.release(tmp_path)
