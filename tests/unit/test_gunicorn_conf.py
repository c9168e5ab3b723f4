"""The web process's memory settings (shop/gunicorn_conf.py), run in fresh interpreters so that each
starts from glibc's own allocator state."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shop.gunicorn_conf import mmap_threshold_fix

# Frees a 16 MB block (glibc then raises its threshold to 16 MB), then allocates and frees an 8 MB block
# and prints how much of it stayed resident.
PROBE = """
import sys
import numpy as np
from shop.gunicorn_conf import mmap_threshold_fix

def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096

if sys.argv[1] == "fixed":
    assert mmap_threshold_fix(4 * 1024 * 1024)
big = np.ones(16 * 2**20 // 8)
del big
before = resident()
block = np.ones(8 * 2**20 // 8)
del block
print((resident() - before) / 2**20)
"""


def _kept_mb(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_freed_photo_sized_block_stays_resident_unless_the_threshold_is_fixed():
    assert _kept_mb("glibc") > 6  # glibc's own threshold: the 8 MB came from the heap and stayed
    assert _kept_mb("fixed") < 1  # mapped on its own, and unmapped when freed


def test_zero_leaves_glibcs_threshold():
    assert mmap_threshold_fix(0) is False
