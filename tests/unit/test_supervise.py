"""shop.supervise: a process that exits by itself is started again; a stop signal stops it for good."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# exits with code 3 on its first two runs (counted in a file), then stays up until signalled
FLAKY = """
import pathlib, sys, time
runs = pathlib.Path(sys.argv[1])
n = int(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text(str(n))
if n <= 2:
    sys.exit(3)
print("up", flush=True)
time.sleep(120)
"""


def test_a_process_that_exits_by_itself_is_started_again_and_a_stop_signal_stops_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "shop.supervise", "--name", "flaky", "--", sys.executable, "-c", FLAKY, str(runs)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (runs.exists() and runs.read_text() == "3") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runs.read_text() == "3", "started again after each exit (pauses 1 s, then 2 s)"
    time.sleep(0.5)
    assert supervisor.poll() is None
    os.killpg(supervisor.pid, signal.SIGTERM)  # as shop.localstack stops a service: the whole group
    out, _ = supervisor.communicate(timeout=20)
    assert supervisor.returncode is not None
    assert out.count("exited by itself with code 3") == 2 and "up" in out
    assert runs.read_text() == "3", "not started again after the stop"
