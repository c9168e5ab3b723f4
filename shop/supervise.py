"""Keep one service process running: start it, and start it again whenever it exits by itself.

    python -m shop.supervise --name worker -- celery -A shop worker ...

``shop.localstack`` runs the Celery workers under it, as production's compose file runs them with
``restart: unless-stopped``. A worker can end by itself: kombu's Redis transport raises an
``AttributeError`` while it restores unacknowledged messages after the broker connection was lost
with tasks in flight, and Celery stops with "Unrecoverable error" (seen in ``bench.soak``; kombu
5.7.0, the newest). The supervisor logs each exit and starts the process again after a pause that
doubles while it keeps failing fast (1 s, 2 s, … 30 s; back to 1 s after a minute of running).

A SIGTERM or SIGINT to the supervisor (``shop.localstack stop`` signals the whole process group) is
passed on to the process, which then stops for good; the supervisor exits with its code.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

import psutil

RESET_AFTER_S = 60.0
MAX_PAUSE_S = 30.0


def log(name: str, message: str) -> None:
    print(f"[supervise] {name}: {message}", flush=True)


def leftovers_kill() -> None:
    """SIGKILL every other living process of this process group: what the exited process left."""
    me, group = os.getpid(), os.getpgrp()
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.pid != me and os.getpgid(proc.pid) == group and proc.status() != psutil.STATUS_ZOMBIE:
                proc.kill()
        except (psutil.Error, ProcessLookupError):
            continue


def supervise(name: str, command: list[str], first_pause: float = 1.0) -> int:
    stopping = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pause = first_pause
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping.is_set():
            return code
        leftovers_kill()  # a process killed alone leaves its own children (a Celery pool) behind
        ran = time.monotonic() - started
        pause = first_pause if ran >= RESET_AFTER_S else pause
        log(name, f"exited by itself with code {code} after {ran:.0f} s; starting it again in {pause:.0f} s")
        if stopping.wait(pause):
            return code
        pause = min(MAX_PAUSE_S, pause * 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop.supervise", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="service", help="the service's name, for the log")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to keep running")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    return supervise(args.name, command)


if __name__ == "__main__":
    sys.exit(main())
