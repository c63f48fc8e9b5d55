"""Seed statistics shared by the tables and the figures: intervals over seeds, noise tests, seeds needed.

All intervals are two-sided 95% Student-t intervals over seeds (``LEVEL``):

* one run, ``n`` seeds with mean ``m`` and sample standard deviation ``s`` (``n - 1`` in the denominator):
  ``m ± t(0.975, n-1) · s / √n``;
* a run against a fixed number ``c`` (the paper's, which comes without an interval): the same interval,
  shifted by ``-c``;
* two runs (a row against the baseline row): Welch's interval,
  ``m1 - m2 ± t(0.975, ν) · √(s1²/n1 + s2²/n2)`` with Welch–Satterthwaite
  ``ν = (s1²/n1 + s2²/n2)² / ((s1²/n1)²/(n1-1) + (s2²/n2)²/(n2-1))``.

A difference whose interval includes 0 is *within noise*. With one seed no interval exists: the
functions return NaN half-widths (never a fake ±0) and :func:`within_noise` returns None (untested).

Seeds needed to resolve an observed difference ``d`` (normal approximation of the power formula,
two-sided ``alpha = 0.05``, ``power = 0.8``, ``z`` = standard normal quantiles)::

    n = ceil(k · (z(1 - alpha/2) + z(power))² · s² / d²)

with ``k = 1`` against a fixed number (``s`` = the run's per-seed standard deviation) and ``k = 2``
seeds *per run* for two runs (``s² = (s1² + s2²) / 2``). ``(1.95996 + 0.84162)² = 7.849``.

References: Student's t interval and Welch (1947), "The generalization of Student's problem when several
different population variances are involved"; the sample-size formula as in e.g. Chow, Shao & Wang,
*Sample Size Calculations in Clinical Research* (2008), §3.1-3.2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Iterable

from scipy import stats as _st

LEVEL = 0.95
ALPHA = 0.05
POWER = 0.8

#: One line for table captions and figure notes.
INTERVAL_NOTE = (f'{LEVEL:.0%} Student-t interval over seeds: mean ± t(0.975, n-1)·s/√n '
                 f'(s = per-seed sample std)')
POWER_NOTE = (f'seeds needed to resolve a difference d: n = ⌈k·(z(1-α/2) + z(power))²·s²/d²⌉, α = {ALPHA}, '
              f'power = {POWER} (normal approximation; k = 1 against the paper with s = the row\'s per-seed std, '
              f'k = 2 seeds per run against the baseline row with s² = the mean of both rows\' variances)')


@dataclass(frozen=True)
class Interval:
    """A mean (or a difference of means) with the half-width of its two-sided interval.

    Attributes:
        mean: The mean (NaN when there is no value or any value is NaN).
        half: Half-width of the interval; NaN when no interval exists (fewer than 2 values per run).
        n: Number of values (per run; for a two-run difference the smaller one).
        sd: Per-seed sample standard deviation (NaN for fewer than 2 values); for a two-run difference the
            root of the mean of both variances (the ``s`` of the power formula).
        df: Degrees of freedom of the t quantile (NaN when no interval exists).
    """

    mean: float
    half: float
    n: int
    sd: float = math.nan
    df: float = math.nan

    @property
    def lo(self) -> float:
        return self.mean - self.half

    @property
    def hi(self) -> float:
        return self.mean + self.half

    @property
    def exists(self) -> bool:
        return not math.isnan(self.half) and not math.isnan(self.mean)


def t_quantile(p: float, df: float) -> float:
    """Quantile ``p`` of Student's t with ``df`` degrees of freedom (``t_quantile(0.975, 2) = 4.3027``)."""
    return float(_st.t.ppf(p, df))


def z_quantile(p: float) -> float:
    """Quantile ``p`` of the standard normal (``z_quantile(0.975) = 1.95996``)."""
    return float(_st.norm.ppf(p))


def _clean(values: Iterable[float]) -> list[float]:
    return [float(v) for v in values]


def sample_sd(values: Iterable[float]) -> float:
    """Sample standard deviation (``n - 1`` in the denominator); NaN for fewer than 2 values."""
    v = _clean(values)
    if len(v) < 2:
        return math.nan
    m = sum(v) / len(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def mean_ci(values: Iterable[float], level: float = LEVEL) -> Interval:
    """Mean of the values and the half-width of its t-interval.

    A NaN among the values makes the mean (and the interval) NaN: a NaN seed is never silently dropped.
    One value: the mean, no interval (NaN half-width). No value: NaN.
    """
    v = _clean(values)
    n = len(v)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    mean = sum(v) / n
    if n == 1 or math.isnan(mean):
        return Interval(mean, math.nan, n)
    sd = sample_sd(v)
    df = n - 1
    return Interval(mean, t_quantile(0.5 + level / 2, df) * sd / math.sqrt(n), n, sd, df)


def diff_to_constant(values: Iterable[float], constant: float, level: float = LEVEL) -> Interval:
    """``mean(values) - constant`` with the t-interval of the mean (the constant has no uncertainty)."""
    ci = mean_ci(values, level)
    return Interval(ci.mean - constant, ci.half, ci.n, ci.sd, ci.df)


def welch_diff(a: Iterable[float], b: Iterable[float], level: float = LEVEL) -> Interval:
    """``mean(a) - mean(b)`` with Welch's t-interval; no interval unless both have at least 2 values."""
    a, b = _clean(a), _clean(b)
    ma, mb = mean_ci(a, level), mean_ci(b, level)
    d = ma.mean - mb.mean
    n = min(len(a), len(b))
    if len(a) < 2 or len(b) < 2 or math.isnan(d):
        return Interval(d, math.nan, n)
    va, vb = ma.sd ** 2 / len(a), mb.sd ** 2 / len(b)
    se2 = va + vb
    sd = math.sqrt((ma.sd ** 2 + mb.sd ** 2) / 2)
    if se2 == 0:  # both runs identical across their seeds: a zero-width interval
        return Interval(d, 0.0, n, sd, math.inf)
    df = se2 ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return Interval(d, t_quantile(0.5 + level / 2, df) * math.sqrt(se2), n, sd, df)


def within_noise(diff: Interval) -> bool | None:
    """True when the interval of a difference includes 0, False when it excludes it, None when none exists."""
    if not diff.exists:
        return None
    return diff.lo <= 0 <= diff.hi


def seeds_needed(diff: float, sd: float, two_runs: bool = False, alpha: float = ALPHA,
                 power: float = POWER) -> float:
    """Seeds (per run) needed to resolve a difference ``diff`` given the per-seed std ``sd``.

    ``ceil(k (z(1-alpha/2) + z(power))² sd² / diff²)``, ``k = 2`` for two runs, else 1 (see the module
    docstring), and at least 2 (one seed has no interval). Returns ``inf`` for a zero difference with a nonzero
    ``sd``, NaN when ``sd`` or ``diff`` is NaN.
    """
    if math.isnan(diff) or math.isnan(sd):
        return math.nan
    if diff == 0:
        return math.inf if sd > 0 else math.nan
    k = 2 if two_runs else 1
    n = k * (z_quantile(1 - alpha / 2) + z_quantile(power)) ** 2 * sd ** 2 / diff ** 2
    return float(max(2, math.ceil(n - 1e-9)))
