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


RESTORER_PROBE = """
import sys, torch, sfhformer
from sfhformer.restore import Restorer
from sfhformer.utils import keep_freed_memory
cfg = sfhformer.SFHformerConfig(widths=(8, 16, 32), up_widths=(16, 8), depths=(1, 1, 1, 1, 1))
r = Restorer(sfhformer.SFHformer(cfg), device="cpu", **({"keep_freed_memory": True} if sys.argv[1] == "opt-in" else {}))
r.restore_tensor(torch.rand(1, 3, 64, 64))
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
a = torch.ones(50_000_000)
held = rss()
del a
print(held, rss())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or sys.platform != "linux", reason="glibc on Linux only")
def test_constructing_a_restorer_leaves_the_allocator_alone():
    """In a fresh process (tests elsewhere switch the setting on in this one): a Restorer, built
    and used, leaves glibc returning freed large blocks; only an explicit opt-in keeps them."""
    def probe(mode):
        out = subprocess.run([sys.executable, "-c", RESTORER_PROBE, mode], capture_output=True, text=True, check=True)
        return [float(v) for v in out.stdout.split()]

    held, after = probe("default")
    assert after < held - 150
    held, after = probe("opt-in")
    assert after > held - 10
