"""analysis.stats against known answers (printed t tables, the normal quantiles of the stdlib, scipy's Welch test)."""
import math
from statistics import NormalDist

import pytest

from analysis import stats

# Two-sided 95% Student-t quantiles t(0.975, df) from printed tables.
T975 = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262}


@pytest.mark.parametrize('df', sorted(T975))
def test_t_quantile_matches_printed_table(df):
    assert stats.t_quantile(0.975, df) == pytest.approx(T975[df], abs=5e-4)


def test_t_interval_of_1_2_3():
    ci = stats.mean_ci([1, 2, 3])  # mean 2, s = 1, n = 3
    assert ci.mean == 2 and ci.sd == pytest.approx(1) and ci.n == 3 and ci.df == 2
    assert ci.half == pytest.approx(4.303 * 1 / math.sqrt(3), abs=1e-3)  # = 2.484
    assert (ci.lo, ci.hi) == pytest.approx((2 - 2.4841, 2 + 2.4841), abs=1e-3)

def test_noise_decisions_against_a_constant():
    d = stats.diff_to_constant([1, 2, 3], 0)  # 2 ± 2.484: includes 0
    assert d.mean == 2 and stats.within_noise(d) is True
    d = stats.diff_to_constant([1, 2, 3], -1)  # 3 ± 2.484: excludes 0
    assert stats.within_noise(d) is False


def test_one_value_has_no_interval_and_nan_is_kept():
    one = stats.mean_ci([5.0])
    assert one.mean == 5 and math.isnan(one.half) and not one.exists
    assert stats.within_noise(stats.diff_to_constant([5.0], 1.0)) is None  # untested, not "significant"
    assert math.isnan(stats.mean_ci([1.0, math.nan, 3.0]).mean)  # a NaN seed is not dropped
    assert math.isnan(stats.mean_ci([]).mean) and stats.mean_ci([]).n == 0


def test_welch_matches_scipy_and_hand_computation():
    from scipy.stats import ttest_ind
    a, b = [1, 2, 3], [4, 5, 6, 7]
    d = stats.welch_diff(a, b)
    # by hand: s1² = 1, s2² = 5/3, se² = 1/3 + 5/12 = 0.75, ν = 0.75² / ((1/3)²/2 + (5/12)²/3) = 4.959
    assert d.mean == -3.5 and d.df == pytest.approx(0.5625 / ((1 / 3) ** 2 / 2 + (5 / 12) ** 2 / 3))
    lo, hi = ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (d.lo, d.hi) == pytest.approx((lo, hi))
    assert stats.within_noise(d) is False
    assert math.isnan(stats.welch_diff([1.0], [1.0, 2.0]).half)  # one seed on a side: no interval


def test_seeds_needed_power_formula():
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)  # 1.95996 + 0.84162
    assert z ** 2 == pytest.approx(7.849, abs=1e-3)
    assert stats.seeds_needed(1.0, 1.0) == math.ceil(z ** 2) == 8
    assert stats.seeds_needed(1.0, 1.0, two_runs=True) == math.ceil(2 * z ** 2) == 16
    assert stats.seeds_needed(0.5, 2.0) == math.ceil(z ** 2 * 4 / 0.25)  # 126
    assert stats.seeds_needed(10.0, 1.0) == 2  # never fewer than the two an interval needs
    assert math.isinf(stats.seeds_needed(0.0, 1.0)) and math.isnan(stats.seeds_needed(1.0, math.nan))
