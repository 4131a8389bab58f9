import platform
import subprocess
import sys

import pytest

from sfhformer.utils import keep_freed_memory

# Allocate and touch 200 MB, free it, and report the resident memory (MB) before and after
# (and after release_freed_memory()).
PROBE = """
import sys, torch
from sfhformer.utils import keep_freed_memory, release_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
a = torch.ones(50_000_000)
held = rss()
del a
after = rss()
release_freed_memory()
print(held, after, rss())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or sys.platform != "linux", reason="glibc on Linux only")
def test_keep_freed_memory_keeps_large_blocks_for_reuse():
    def probe(mode):
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return [float(v) for v in out.stdout.split()]

    held, after, _ = probe("default")
    assert after < held - 150  # glibc returned the 200 MB block to the system
    held, after, released = probe("keep")
    assert after > held - 10  # kept for the next tensor
    assert released < held - 150  # until released
    assert keep_freed_memory() is True and keep_freed_memory() is True  # idempotent
