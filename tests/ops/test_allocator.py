"""ops.allocator: the glibc malloc setting the benchmarks use (large blocks reused instead of re-faulted)."""
import subprocess
import sys

import pytest

from ops import allocator

PROBE = r'''
import resource, sys, torch
from ops import allocator
if sys.argv[1] == 'tuned':
    assert allocator.tune_glibc_malloc()
n = 64 * 2 ** 20 // 4
x = torch.empty(n); x.fill_(1.0); del x          # first allocation: page faults either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
y = torch.empty(n); y.fill_(2.0)                  # second allocation of the same size
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, '-c', PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc: Linux only')
def test_tuned_malloc_reuses_large_blocks_without_page_faults():
    # 64 MiB = 16384 pages of 4 KiB: glibc's default maps a fresh region (one fault per page, fewer with
    # transparent huge pages); tuned, the freed block is reused and the refill faults (almost) nowhere.
    default, tuned = _faults('default'), _faults('tuned')
    assert default > 1000, default
    assert tuned < 100, tuned


def test_tune_rejects_nonpositive_threshold_and_describes_state():
    with pytest.raises(ValueError, match='positive'):
        allocator.tune_glibc_malloc(0)
    assert 'malloc' in allocator.describe()
