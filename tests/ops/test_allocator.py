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
faults = []
for _ in range(16):  # the same 64 MiB allocation again and again, as in a training loop
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(n); x.fill_(1.0); del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[-4:]))
'''


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, '-c', PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc: Linux only')
def test_tuned_malloc_reuses_large_blocks_without_page_faults():
    # 64 MiB = 16384 pages of 4 KiB. glibc's default maps a fresh region for every allocation (one fault per
    # page, fewer with transparent huge pages). Tuned, freed blocks stay in the heap; after a few rounds
    # (posix_memalign's alignment offsets make the first ~8 blocks too small for the next request) every
    # allocation reuses one and the refill faults (almost) nowhere. Faults counted over the last 4 rounds.
    default, tuned = _faults('default'), _faults('tuned')
    assert default > 4000, default
    assert tuned < 100, tuned


def test_tune_rejects_nonpositive_threshold():
    with pytest.raises(ValueError, match='positive'):
        allocator.tune_glibc_malloc(0)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc: Linux only')
def test_describe_reports_the_setting_in_force():
    # in a subprocess: tuning changes the allocator of the whole process
    code = ('from ops import allocator; print(allocator.describe()); '
            'assert allocator.tune_glibc_malloc(); print(allocator.describe())')
    before, after = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                                   check=True).stdout.strip().splitlines()[-2:]
    assert before.startswith('default glibc malloc'), before
    assert after.startswith('glibc malloc tuned'), after
